// A burst forwarder between two vhost-user ports, both ways, with the zero-copy burst API: frames are taken from one
// device's receive ring in bursts of 32, copied once into the other device's transmit buffers (the two devices do not
// share memory) and handed over in one burst; a busy-polling loop, as a DPDK forwarder is. Runs until Ctrl-C or
// SECONDS pass, then prints what it forwarded. Usage: BurstForwarder SOCKET_A SOCKET_B [SECONDS]
using System.Globalization;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.VhostUser;

double seconds = double.PositiveInfinity;
if (args.Length is < 2 or > 3 || (args.Length == 3 && !double.TryParse(args[2], CultureInfo.InvariantCulture, out seconds)))
{
    Console.Error.WriteLine("usage: BurstForwarder SOCKET_A SOCKET_B [SECONDS]");
    return 2;
}

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
if (double.IsFinite(seconds))
{
    stop.CancelAfter(TimeSpan.FromSeconds(seconds));
}

try
{
    var poll = new VirtioNetOptions { OperationMode = OperationMode.Poll };
    using VhostUserNetDevice a = VhostUserNetDevice.Open(new VhostUserOptions { SocketPath = args[0] }, poll, cancellationToken: stop.Token);
    using VhostUserNetDevice b = VhostUserNetDevice.Open(new VhostUserOptions { SocketPath = args[1] }, poll, cancellationToken: stop.Token);
    var received = new ReceivedPacket[32];
    var room = new TransmitPacket[32];
    long aToB = 0, bToA = 0;
    while (!stop.IsCancellationRequested)
    {
        aToB += Forward(a.Device, b.Device, received, room);
        bToA += Forward(b.Device, a.Device, received, room);
    }

    Console.WriteLine($"forwarded {aToB} frames A to B, {bToA} B to A");
    return 0;
}
catch (Exception e) when (e is VirtioException or IOException or OperationCanceledException)
{
    Console.Error.WriteLine($"BurstForwarder: {args[0]}, {args[1]}: {e.Message}");
    return 1;
}

static int Forward(VirtioNetDevice from, VirtioNetDevice to, ReceivedPacket[] received, TransmitPacket[] room)
{
    VirtioNetQueuePair rx = from.Pairs[0];
    VirtioNetQueuePair tx = to.Pairs[0];
    int count = rx.ReceiveBurst(received);
    int slots = count == 0 ? 0 : tx.AllocateBurst(room.AsSpan(0, count));
    int filled = 0;
    foreach (ReceivedPacket packet in received.AsSpan(0, count))
    {
        // Dropped: no free transmit buffer, or a frame received in several buffers (mergeable), too long to forward.
        if (filled < slots && packet.SegmentCount == 1 && packet.Length <= room[filled].Span.Length)
        {
            packet.Span.CopyTo(room[filled].Span);
            room[filled] = room[filled].WithLength(packet.Length);
            filled++;
        }
    }

    rx.ReleaseBurst(received.AsSpan(0, count));
    int sent = tx.TransmitBurst(room.AsSpan(0, filled), out _);
    tx.FreeBurst(room.AsSpan(sent, slots - sent));
    return sent;
}
