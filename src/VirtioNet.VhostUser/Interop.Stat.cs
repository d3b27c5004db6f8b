using System.Runtime.InteropServices;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>
    /// sys/stat.h: statx, for the type of a path (a socket or something else). statx's structure has one layout on every
    /// architecture (struct stat does not), so only the fields read are named here.
    /// </summary>
    internal static unsafe partial class Stat
    {
        /// <summary>AT_FDCWD: a relative path is taken from the working directory.</summary>
        internal const int AT_FDCWD = -100;

        /// <summary>AT_SYMLINK_NOFOLLOW: a symbolic link is described, not its target.</summary>
        internal const int AT_SYMLINK_NOFOLLOW = 0x100;

        /// <summary>STATX_TYPE: stx_mode's file type bits are wanted.</summary>
        internal const uint STATX_TYPE = 0x1;

        /// <summary>S_IFMT: the file type bits of a mode.</summary>
        internal const ushort S_IFMT = 0xF000;

        /// <summary>S_IFSOCK: a socket.</summary>
        internal const ushort S_IFSOCK = 0xC000;

        /// <summary>sizeof(struct statx).</summary>
        internal const int StatxLength = 256;

        /// <summary>offsetof(struct statx, stx_mode) (u16): after stx_mask, stx_blksize, stx_attributes, stx_nlink, stx_uid, stx_gid.</summary>
        internal const int StatxModeOffset = 28;

        [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int Statx(int directory, string path, int flags, uint mask, byte* buffer);

        /// <summary>Whether <paramref name="path"/> itself (a link is not followed) is a socket; false when it cannot be described.</summary>
        internal static bool IsSocket(string path)
        {
            byte* buffer = stackalloc byte[StatxLength];

            // SAFETY: statx writes at most sizeof(struct statx) bytes into the stack buffer of that size.
            if (Statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_TYPE, buffer) != 0)
            {
                return false;
            }

            ushort mode = *(ushort*)(buffer + StatxModeOffset);
            return (mode & S_IFMT) == S_IFSOCK;
        }
    }
}
