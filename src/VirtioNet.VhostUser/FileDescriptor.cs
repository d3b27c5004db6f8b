using System.Runtime.InteropServices;

namespace VirtioNet.VhostUser;

/// <summary>
/// An open Linux file descriptor (socket, eventfd, memfd) that is closed exactly once, when the last user lets go.
/// </summary>
/// <remarks>
/// A <see cref="SafeHandle"/> rather than an <c>int</c> so that a descriptor passed to a system call cannot be closed and
/// reused by another thread in the middle of that call (the marshaller holds a reference across it).
/// </remarks>
internal sealed class FileDescriptor : SafeHandle
{
    /// <summary>Creates an invalid descriptor; the interop marshaller fills it in on return.</summary>
    public FileDescriptor()
        : base(-1, ownsHandle: true)
    {
    }

    /// <summary>Takes ownership of <paramref name="fd"/>.</summary>
    internal FileDescriptor(int fd)
        : base(-1, ownsHandle: true) => SetHandle(fd);

    /// <inheritdoc />
    public override bool IsInvalid => handle < 0;

    /// <summary>The descriptor's number, for messages and for system calls that take arrays of descriptors.</summary>
    internal int Number => (int)handle;

    /// <inheritdoc />
    protected override bool ReleaseHandle() => Interop.Unistd.Close((int)handle) == 0;
}
