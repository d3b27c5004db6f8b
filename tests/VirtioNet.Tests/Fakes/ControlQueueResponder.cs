using System.Collections.Concurrent;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Control;

namespace VirtioNet.Tests.Fakes;

/// <summary>
/// The device side of a software device's control queue on a thread of its own: records every command (class, code,
/// payload) and acknowledges it with VIRTIO_NET_OK. It starts over on a fresh ring whenever the queues are set up again,
/// and when a reset or a suspend zeroed the ring under it (its available index went back to 0). Ref: virtio v1.2 §5.1.6.5.
/// </summary>
internal sealed class ControlQueueResponder : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _task;

    public ControlQueueResponder(HeapDmaAllocator memory, SoftwareNetTransport transport, VirtioNetDevice net)
    {
        _task = Task.Run(() => Serve(memory, transport, net), CancellationToken.None);
    }

    /// <summary>The commands taken so far, in order.</summary>
    public ConcurrentQueue<(byte Class, byte Code, byte[] Payload)> Commands { get; } = new();

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _task.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        _stop.Dispose();
    }

    private void Serve(HeapDmaAllocator memory, SoftwareNetTransport transport, VirtioNetDevice net)
    {
        int seen = -1;
        SoftwareSplitDevice? device = null;
        while (!_stop.IsCancellationRequested)
        {
            if (transport.Activations != seen || device is null)
            {
                seen = transport.Activations;
                device = new SoftwareSplitDevice(memory, net.Control.Queue!.Queue, eventIdx: true);
            }

            DeviceChain? chain;
            try
            {
                if (!device.TryPop(out chain))
                {
                    Thread.Sleep(1);
                    continue;
                }
            }
            catch (VirtioException)
            {
                device = null;
                Thread.Sleep(1);
                continue;
            }

            byte[] readable = chain.ReadReadable();
            Commands.Enqueue((readable[0], readable[1], readable[2..]));
            device.Complete(chain, (uint)chain.WriteWritable([VirtioNetControlCommands.AckOk]));
        }
    }
}
