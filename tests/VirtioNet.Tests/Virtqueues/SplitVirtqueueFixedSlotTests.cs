using VirtioNet.Core;
using VirtioNet.Platform;
using VirtioNet.Tests.Fakes;
using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

/// <summary>
/// The fixed-slot path of a split ring with VIRTIO_F_IN_ORDER (<see cref="SplitVirtqueue.TryAddOne"/>, and reclaim by
/// counting used.idx when every chain in flight is device-readable), against a software device: wrap, recovery, and a
/// device that lies. Ref: virtio v1.2 §2.7.9.
/// </summary>
public sealed class SplitVirtqueueFixedSlotTests
{
    [Fact]
    public void FixedSlotsGoRoundTheRingManyTimesEachBufferInItsOwnDescriptorWithTheLengthOfTheLap()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        DmaRegion[] slots = [.. Enumerable.Range(0, 8).Select(_ => h.Buffer(128))];
        int next = 0;
        for (int lap = 0; lap < 20; lap++)
        {
            // Three laps of 8, then laps of 5 and 3: the ring index wraps at other places than the descriptors.
            int count = lap < 3 ? 8 : 5 + (lap % 2 * -2);
            for (int i = 0; i < count; i++)
            {
                // Slots in ring order, as the transmit and receive queues hand them out: slot k in descriptor k.
                int slot = next++ % 8;
                Assert.True(h.Queue.TryAddOne(slots[slot].DeviceAddress, (uint)(60 + lap), deviceWritable: false, token: slot));
            }

            h.Queue.KickPrepare();
            List<DeviceChain> chains = h.PopAll();
            Assert.Equal(count, chains.Count);
            foreach (DeviceChain chain in chains)
            {
                DeviceBuffer only = Assert.Single(chain.Buffers);
                Assert.Equal(slots[chain.Head].DeviceAddress, only.Address);
                Assert.Equal((uint)(60 + lap), only.Length);
                Assert.False(only.Writable);
            }

            h.CompleteInOrderBatch(chains, 0);
            Assert.Equal(chains.Select(c => (int)c.Head), h.TakeAll().Select(u => u.Token));
            Assert.Equal(8, h.Queue.FreeDescriptors);
        }
    }

    [Fact]
    public void ReadOnlyChainsInOrderAreTakenBackByCountingUsedIdxWhateverTheEntriesSay()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        for (int i = 0; i < 4; i++)
        {
            Assert.True(h.Queue.TryAddOne(h.Buffer(64).DeviceAddress, 64, deviceWritable: false, token: 10 + i));
        }

        h.Queue.KickPrepare();
        h.PopAll();

        // One entry naming no descriptor at all, used.idx moved by four: transmit chains carry nothing an entry could
        // add, so the four oldest come back, oldest first, and the queue stays sound.
        h.Device.PushUsedBatch(999, 12345, 4);
        Assert.Equal(new[] { new UsedBuffer(10, 0), new UsedBuffer(11, 0), new UsedBuffer(12, 0), new UsedBuffer(13, 0) }, h.TakeAll());
        Assert.False(h.Queue.IsBroken);
        Assert.Equal(0, h.Queue.Outstanding);
    }

    [Fact]
    public void AUsedIdxPastThePublishedChainsBreaksTheQueueOnTheCountingPathToo()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        for (int i = 0; i < 3; i++)
        {
            Assert.True(h.Queue.TryAddOne(h.Buffer(64).DeviceAddress, 64, deviceWritable: false, token: i));
        }

        h.Queue.KickPrepare();
        h.PopAll();

        // Two more added but not published: the device was never shown them, so it cannot have used them.
        Assert.True(h.Queue.TryAddOne(h.Buffer(64).DeviceAddress, 64, deviceWritable: false, token: 3));
        Assert.True(h.Queue.TryAddOne(h.Buffer(64).DeviceAddress, 64, deviceWritable: false, token: 4));
        h.Device.SetUsedIdx(4);

        Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));
        Assert.True(h.Queue.IsBroken);
        Assert.Equal(5, h.Queue.Outstanding);
    }

    [Fact]
    public void AReceiveBufferOnTheFixedSlotPathStillHasItsUsedLengthCheckedAgainstItsSize()
    {
        using var h = new SplitQueueHarness(8, inOrder: true);
        DmaRegion buffer = h.Buffer(1536);
        Assert.True(h.Queue.TryAddOne(buffer.DeviceAddress, 1536, deviceWritable: true, token: 5));
        Assert.True(h.Queue.TryAddOne(h.Buffer(1536).DeviceAddress, 1536, deviceWritable: true, token: 6));
        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.PopAll();
        Assert.True(Assert.Single(chains[0].Buffers).Writable);

        h.CompleteInOrderBatch(chains[..1], 1000);
        Assert.Equal(new[] { new UsedBuffer(5, 1000) }, h.TakeAll());

        // One byte more than the buffer holds: the driver would read past it, so the queue breaks.
        h.CompleteInOrderBatch(chains[1..], 1537);
        Assert.Throws<VirtioException>(() => h.Queue.TryTakeUsed(out _));
        Assert.True(h.Queue.IsBroken);
    }

    [Fact]
    public void ADeviceThatScribbledOverAFixedSlotsDescriptorAndAvailEntryGetsThemWrittenAgainOnlyAfterARingReset()
    {
        using var h = new SplitQueueHarness(4, inOrder: true);
        DmaRegion[] slots = [.. Enumerable.Range(0, 4).Select(_ => h.Buffer(64))];
        for (int i = 0; i < 4; i++)
        {
            Assert.True(h.Queue.TryAddOne(slots[i].DeviceAddress, 64, deviceWritable: false, token: i));
        }

        h.Queue.KickPrepare();
        h.CompleteInOrderBatch(h.PopAll(), 0);
        Assert.Equal(4, h.TakeAll().Count);

        // The driver never reads the table back, so the junk stays until the shadows say the descriptor changes; what
        // the driver itself reads (used entries) is checked as ever.
        h.Device.ScribbleOverDescriptor(0);
        int[] tokens = new int[4];
        Assert.Equal(0, h.Queue.DetachAll(tokens));

        // After a reset (DetachAll clears the ring and the shadows) the same slots are written out whole again.
        h.AttachNewDevice();
        for (int i = 0; i < 4; i++)
        {
            Assert.True(h.Queue.TryAddOne(slots[i].DeviceAddress, 64, deviceWritable: false, token: i));
        }

        h.Queue.KickPrepare();
        List<DeviceChain> chains = h.PopAll();
        Assert.Equal(Enumerable.Range(0, 4).Select(i => slots[i].DeviceAddress), chains.Select(c => Assert.Single(c.Buffers).Address));
    }
}
