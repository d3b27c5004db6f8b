using System.Runtime.InteropServices;
using VirtioNet.Service;

namespace VirtioNet;

internal static partial class Interop
{
    /// <summary>The one place errno becomes an exception: "<paramref name="operation"/>: No such file or directory (errno 2)".</summary>
    internal static ServiceException Failure(string operation, int errno) =>
        new($"{operation}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno);
}
