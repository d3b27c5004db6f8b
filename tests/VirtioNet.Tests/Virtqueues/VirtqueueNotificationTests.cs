using VirtioNet.Virtqueues;
using Xunit;

namespace VirtioNet.Tests.Virtqueues;

public class VirtqueueNotificationTests
{
    [Theory]
    // event, new, old, expected: the event fires when event lies in [old, new).
    [InlineData(0, 1, 0, true)]
    [InlineData(0, 0, 0, false)]
    [InlineData(5, 10, 5, true)]
    [InlineData(9, 10, 5, true)]
    [InlineData(10, 10, 5, false)]
    [InlineData(4, 10, 5, false)]
    [InlineData(7, 7, 7, false)]
    public void NeedEventFiresWhenTheBatchCoversTheEventIndex(int eventIdx, int newIdx, int oldIdx, bool expected)
        => Assert.Equal(expected, VirtqueueNotification.NeedEvent((ushort)eventIdx, (ushort)newIdx, (ushort)oldIdx));

    [Theory]
    // Batches that cross 65535 → 0.
    [InlineData(65534, 2, 65534, true)]
    [InlineData(65535, 2, 65534, true)]
    [InlineData(0, 2, 65534, true)]
    [InlineData(1, 2, 65534, true)]
    [InlineData(2, 2, 65534, false)]
    [InlineData(65533, 2, 65534, false)]
    [InlineData(65535, 0, 65535, true)]
    [InlineData(0, 0, 65535, false)]
    [InlineData(32768, 32767, 65535, false)]
    [InlineData(100, 32767, 65535, true)]
    public void NeedEventHoldsAcrossTheWrapAt65535(int eventIdx, int newIdx, int oldIdx, bool expected)
        => Assert.Equal(expected, VirtqueueNotification.NeedEvent((ushort)eventIdx, (ushort)newIdx, (ushort)oldIdx));

    [Fact]
    public void NeedEventAgreesWithTheIntervalDefinitionForRandomIndexes()
    {
        var random = new Random(20251124);
        for (int i = 0; i < 200_000; i++)
        {
            int oldIdx = random.Next(65536);
            int batch = random.Next(1, 32769);
            int newIdx = (oldIdx + batch) % 65536;
            int eventIdx = random.Next(4) == 0 ? (oldIdx + random.Next(-2, 3) + 65536) % 65536 : random.Next(65536);

            // Distance from old to event, in wrapping 16-bit arithmetic done with ints.
            int eventDistance = (eventIdx - oldIdx + 65536) % 65536;
            bool expected = eventDistance < batch;

            Assert.Equal(expected, VirtqueueNotification.NeedEvent((ushort)eventIdx, (ushort)newIdx, (ushort)oldIdx));
        }
    }
}
