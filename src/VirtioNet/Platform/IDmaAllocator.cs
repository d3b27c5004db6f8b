using System.Runtime.InteropServices;

namespace VirtioNet.Platform;

/// <summary>
/// Hands out memory the device can reach. Called at setup time (rings, buffer pools), never per packet.
/// </summary>
public interface IDmaAllocator
{
    /// <summary>
    /// Allocates <paramref name="length"/> zeroed bytes whose device address is a multiple of
    /// <paramref name="alignment"/> (a power of two).
    /// </summary>
    /// <exception cref="Core.VirtioException">With <see cref="Core.VirtioErrorReason.OutOfDmaMemory"/> when no block fits.</exception>
    DmaRegion Allocate(int length, int alignment);

    /// <summary>Returns a region obtained from <see cref="Allocate"/>. The device must no longer use it.</summary>
    void Free(DmaRegion region);

    /// <summary>
    /// Makes CPU writes in the range visible to the device. A no-op on cache-coherent platforms
    /// (x86, QEMU's shared guest RAM); platforms with non-coherent caches clean the range here.
    /// </summary>
    /// <remarks>
    /// The queues call the two sync methods on exactly the bytes each side owns, which is right for a byte-exact cache;
    /// real caches work in lines, and ring memory has driver- and device-written fields in the same line (the whole
    /// packed ring; the tail of the split avail ring and the head of the used ring). A non-coherent platform must
    /// therefore hand out ring memory uncached (as Linux's coherent DMA allocations are), or a clean of one side's
    /// bytes would write back the other side's stale ones.
    /// </remarks>
    void SyncForDevice(DmaRegion region) { }

    /// <summary>
    /// Makes device writes in the range visible to the CPU. A no-op on cache-coherent platforms;
    /// platforms with non-coherent caches invalidate the range here.
    /// </summary>
    void SyncForCpu(DmaRegion region) { }

    /// <summary>
    /// Whether <see cref="DmaRegion.DeviceAddress"/> is a bus address that the platform translates (an IOMMU mapping,
    /// an I/O virtual address) rather than the physical address the CPU uses. Default false: on the platforms here
    /// (QEMU guest RAM, vhost-user shared memory) the two are the same.
    /// <para>
    /// It decides VIRTIO_F_ACCESS_PLATFORM (virtio v1.2 §6.1): a device that does not offer the feature uses physical
    /// addresses untranslated, so a platform that hands out translated addresses cannot drive it, and bring-up fails
    /// with <see cref="Core.VirtioErrorReason.RequiredFeatureMissing"/> instead of letting the device reach the wrong memory.
    /// </para>
    /// </summary>
    bool TranslatesDeviceAddresses => false;

    /// <summary>
    /// Whether the queues' memory ordering, together with <see cref="SyncForDevice"/> and <see cref="SyncForCpu"/>, is
    /// the one a hardware device on this platform needs. It decides VIRTIO_F_ORDER_PLATFORM (virtio v1.2 §6.1): once it
    /// is negotiated the driver must use "the barriers suitable for hardware devices".
    /// <para>
    /// Default: true on x86 and x64, where the acquire/release accesses and full fences the queues use are already those
    /// barriers (TSO stores, locked-instruction fences); false elsewhere, because on weakly ordered CPUs (Arm64, RISC-V)
    /// .NET's barriers order CPUs, not bus masters. A platform there that supplies device-domain barriers in its sync
    /// methods overrides it.
    /// </para>
    /// </summary>
    bool OrdersAccessesForHardwareDevices =>
        RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.X86;
}
