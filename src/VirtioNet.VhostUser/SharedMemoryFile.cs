namespace VirtioNet.VhostUser;

/// <summary>
/// Anonymous memory with a file descriptor (memfd), mapped shared into this process. The backend maps the same pages
/// from the descriptor it receives in SET_MEM_TABLE, so both sides see every write without copies.
/// </summary>
internal sealed class SharedMemoryFile : IDisposable
{
    private SharedMemoryFile(FileDescriptor fd, nint address, long length)
    {
        Descriptor = fd;
        Address = address;
        Length = length;
    }

    /// <summary>The memfd, sent to the backend.</summary>
    internal FileDescriptor Descriptor { get; }

    /// <summary>Where the mapping starts in this process (page-aligned).</summary>
    internal nint Address { get; private set; }

    /// <summary>The mapping's length in bytes (a multiple of the page size).</summary>
    internal long Length { get; }

    /// <summary>Creates a memfd of <paramref name="length"/> bytes (zero-filled by the kernel) and maps it.</summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.PlatformFailure"/> when a system call fails; nothing is leaked.</exception>
    internal static SharedMemoryFile Create(string name, long length)
    {
        FileDescriptor fd = Interop.MemFd.Create(name, Interop.MemFd.MFD_CLOEXEC);
        if (fd.IsInvalid)
        {
            VirtioException failure = Interop.Failure($"memfd_create(\"{name}\")");
            fd.Dispose();
            throw failure;
        }

        try
        {
            if (Interop.MemFd.Truncate(fd, length) != 0)
            {
                throw Interop.Failure($"ftruncate of memfd \"{name}\" to {length} bytes");
            }

            nint address = Interop.Mman.Map(0, (nuint)length, Interop.Mman.PROT_READ | Interop.Mman.PROT_WRITE, Interop.Mman.MAP_SHARED, fd, 0);
            if (address == Interop.Mman.MAP_FAILED)
            {
                throw Interop.Failure($"mmap of memfd \"{name}\" ({length} bytes)");
            }

            return new SharedMemoryFile(fd, address, length);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Unmaps and closes. The backend's own mapping, if any, stays until it lets go.</summary>
    public void Dispose()
    {
        if (Address != 0)
        {
            _ = Interop.Mman.Unmap(Address, (nuint)Length);
            Address = 0;
        }

        Descriptor.Dispose();
    }
}
