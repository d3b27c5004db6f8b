using System.Text.Json.Nodes;
using VirtioNet.Service;
using Xunit;

namespace VirtioNet.Tests.Service;

/// <summary>
/// The capture hub between the pumps and <c>vnet capture</c> clients, as pure logic: null while nobody captures (the
/// pumps' one check), a client that does not read loses records (counted) while recording never waits, and each client
/// gets only the queue and direction it asked for.
/// </summary>
public sealed class CaptureHubTests
{
    [Fact]
    public void TheHubHasNoActiveClientsUntilOneSubscribesAndNoneAfterItLeaves()
    {
        var hub = new CaptureHub();
        Assert.Null(hub.Active);
        CaptureSubscription first = hub.Subscribe(2, null, null);
        CaptureSubscription second = hub.Subscribe(2, 1, CaptureDirection.Transmitted);
        Assert.Equal(2, hub.Active!.Length);
        first.Dispose();
        Assert.Same(second, Assert.Single(hub.Active!));
        second.Dispose();
        Assert.Null(hub.Active);
    }

    [Fact]
    public async Task AClientThatDoesNotReadLosesRecordsCountedAndRecordingNeverWaits()
    {
        var hub = new CaptureHub();
        using CaptureSubscription client = hub.Subscribe(1, null, null);
        const int Frames = 5000;
        byte[] frame = new byte[60];
        for (int i = 0; i < Frames; i++)
        {
            BitConverter.TryWriteBytes(frame, i);
            CaptureHub.Record(hub.Active!, 0, CaptureDirection.Received, frame);
        }

        Assert.Equal(Frames - 4096, client.Dropped);

        // What was kept is the first 4096, in order, each intact, and the lines say how many were lost.
        for (int i = 0; i < 4096; i++)
        {
            JsonObject line = (await client.NextAsync(TestContext.Current.CancellationToken))!;
            byte[] data = Convert.FromBase64String(line["data"]!.ToString());
            Assert.Equal(60, data.Length);
            Assert.Equal(i, BitConverter.ToInt32(data));
            Assert.Equal("rx", line["direction"]!.ToString());
            Assert.Equal(Frames - 4096, line["dropped"]!.GetValue<long>());
        }
    }

    [Fact]
    public async Task AClientGetsOnlyTheQueueAndDirectionItAskedFor()
    {
        var hub = new CaptureHub();
        using CaptureSubscription client = hub.Subscribe(2, 1, CaptureDirection.Transmitted);
        Assert.Equal(1, client.Reply["queue"]!.GetValue<int>());
        Assert.Equal("tx", client.Reply["direction"]!.ToString());
        CaptureHub.Record(hub.Active!, 0, CaptureDirection.Transmitted, [1, 2, 3]);
        CaptureHub.Record(hub.Active!, 1, CaptureDirection.Received, [4, 5, 6]);
        CaptureHub.Record(hub.Active!, 1, CaptureDirection.Transmitted, [7, 8, 9]);
        JsonObject line = (await client.NextAsync(TestContext.Current.CancellationToken))!;
        Assert.Equal([7, 8, 9], Convert.FromBase64String(line["data"]!.ToString()));
        Assert.Equal(1, line["queue"]!.GetValue<int>());
        client.Dispose();
        Assert.Null(await client.NextAsync(TestContext.Current.CancellationToken));
    }
}
