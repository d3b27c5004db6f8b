using System.Runtime.InteropServices;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>
    /// The one place errno becomes an exception: "<paramref name="operation"/> failed: No such file or directory (errno 2)."
    /// </summary>
    internal static VirtioException Failure(string operation) => Failure(operation, LastErrno);

    /// <summary>The exception for <paramref name="errno"/>, when the caller saved it before making other calls.</summary>
    internal static VirtioException Failure(string operation, int errno) =>
        new(VirtioErrorReason.PlatformFailure, $"{operation} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).");
}
