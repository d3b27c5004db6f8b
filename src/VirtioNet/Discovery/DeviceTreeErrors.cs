using System.Diagnostics.CodeAnalysis;
using VirtioNet.Core;

namespace VirtioNet.Discovery;

/// <summary>
/// The one place device tree failures are raised, so every check reads as a condition and a sentence, and every
/// failure has the same reason (<see cref="VirtioErrorReason.MalformedDescription"/>) whatever layer found it.
/// </summary>
internal static class DeviceTreeErrors
{
    /// <summary>Throws a <see cref="VirtioException"/> with the <see cref="VirtioErrorReason.MalformedDescription"/> reason.</summary>
    [DoesNotReturn]
    public static void Throw(string message) =>
        throw new VirtioException(VirtioErrorReason.MalformedDescription, "Device tree: " + message);
}
