using System.Runtime.CompilerServices;

namespace VirtioNet.VhostUser;

/// <summary>
/// An eventfd: a 64-bit counter in the kernel that one side adds to (a kick or a call) and the other reads and resets.
/// Non-blocking, so reading an unsignalled counter returns 0 instead of waiting. Ref: vhost-user.rst, "Introduction".
/// </summary>
internal sealed class EventFileDescriptor : IDisposable
{
    private EventFileDescriptor(FileDescriptor handle) => Handle = handle;

    /// <summary>The descriptor, for SCM_RIGHTS and poll.</summary>
    internal FileDescriptor Handle { get; }

    /// <summary>Creates a counter at 0.</summary>
    /// <exception cref="VirtioException">With <see cref="VirtioErrorReason.PlatformFailure"/> when the kernel refuses.</exception>
    internal static EventFileDescriptor Create(string what)
    {
        FileDescriptor fd = Interop.EventFd.Create(0, Interop.EventFd.EFD_CLOEXEC | Interop.EventFd.EFD_NONBLOCK);
        if (fd.IsInvalid)
        {
            VirtioException failure = Interop.Failure($"eventfd for {what}");
            fd.Dispose();
            throw failure;
        }

        return new EventFileDescriptor(fd);
    }

    /// <summary>Adds 1 to the counter, waking whoever polls it. On the packet path: no allocation, one system call.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal unsafe void Signal()
    {
        ulong one = 1;

        // SAFETY: 'one' lives on this stack frame for the duration of the call; eventfd reads exactly 8 bytes from it.
        // The only failure is EAGAIN when the counter would pass 2^64 - 2, which cannot happen with a reader: drop it.
        _ = Interop.Unistd.Write(Handle, &one, sizeof(ulong));
    }

    /// <summary>Reads and resets the counter: the number of signals since the last read, 0 when none.</summary>
    internal unsafe ulong Consume()
    {
        ulong value = 0;

        // SAFETY: 'value' lives on this stack frame; eventfd writes exactly 8 bytes into it or nothing (EAGAIN).
        nint read = Interop.Unistd.Read(Handle, &value, sizeof(ulong));
        return read == sizeof(ulong) ? value : 0;
    }

    /// <inheritdoc />
    public void Dispose() => Handle.Dispose();
}
