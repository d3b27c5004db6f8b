using System.Reflection;

namespace VirtioNet.Platform;

/// <summary>
/// Decides once, when a queue is built, whether an allocator's cache maintenance does anything, so that the packet path
/// of a cache-coherent platform carries no call at all (not even an interface call to a no-op) and that of a
/// non-coherent one still cleans and invalidates exactly what it did.
/// </summary>
internal static class DmaSync
{
    /// <summary>
    /// True when <paramref name="dma"/> implements <see cref="IDmaAllocator.SyncForDevice"/> or
    /// <see cref="IDmaAllocator.SyncForCpu"/> itself; false when both are the interface's no-op defaults. When the
    /// runtime cannot say (no interface map), it answers true: a sync too many costs time, one too few corrupts data.
    /// </summary>
    internal static bool IsNeeded(IDmaAllocator dma)
    {
        ArgumentNullException.ThrowIfNull(dma);
        try
        {
            InterfaceMapping map = dma.GetType().GetInterfaceMap(typeof(IDmaAllocator));
            for (int i = 0; i < map.InterfaceMethods.Length; i++)
            {
                string name = map.InterfaceMethods[i].Name;
                if ((name == nameof(IDmaAllocator.SyncForDevice) || name == nameof(IDmaAllocator.SyncForCpu)) &&
                    map.TargetMethods[i].DeclaringType != typeof(IDmaAllocator))
                {
                    return true;
                }
            }

            return false;
        }
        catch (Exception e) when (e is NotSupportedException or PlatformNotSupportedException or ArgumentException or InvalidOperationException)
        {
            return true;
        }
    }
}
