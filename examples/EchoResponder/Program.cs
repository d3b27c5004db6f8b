// An echo responder on a vhost-user port: every frame that arrives goes back out with its MAC addresses swapped, until
// Ctrl-C or SECONDS pass; then it prints how many frames it echoed. Usage: EchoResponder SOCKET [SECONDS]
// Try it against DPDK, which sends 32 frames first and returns what comes back:
// dpdk-testpmd --no-huge -m 512 --no-pci --vdev 'net_vhost0,iface=SOCKET' -- --forward-mode=io --tx-first
using System.Globalization;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.VhostUser;

double seconds = double.PositiveInfinity;
if (args.Length is < 1 or > 2 || (args.Length == 2 && !double.TryParse(args[1], CultureInfo.InvariantCulture, out seconds)))
{
    Console.Error.WriteLine("usage: EchoResponder SOCKET [SECONDS]");
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
    using VhostUserNetDevice session = VhostUserNetDevice.Open(new VhostUserOptions { SocketPath = args[0] }, cancellationToken: stop.Token);
    Console.WriteLine($"echoing on {session.Device.TransportDescription}");

    // The device's waits are synchronous today (WaitForReceive sleeps on the call eventfd); the loop runs on a pool
    // thread so that Main stays free to await it.
    long echoed = await Task.Run(() => Echo(session.Device, stop.Token));
    Console.WriteLine($"echoed {echoed} frames");
    return 0;
}
catch (Exception e) when (e is VirtioException or IOException or OperationCanceledException)
{
    Console.Error.WriteLine($"EchoResponder: {args[0]}: {e.Message}");
    return 1;
}

static long Echo(VirtioNetDevice device, CancellationToken cancellationToken)
{
    VirtioNetQueuePair pair = device.Pairs[0];
    var frame = new byte[pair.MaxReceiveFrameLength];
    long echoed = 0;
    while (!cancellationToken.IsCancellationRequested)
    {
        try
        {
            pair.WaitForReceive(TimeSpan.FromMilliseconds(100), cancellationToken);
        }
        catch (OperationCanceledException)
        {
            break;
        }

        while (pair.TryReceive(frame, out ReceivedFrame received))
        {
            for (int i = 0; i < 6; i++)
            {
                (frame[i], frame[i + 6]) = (frame[i + 6], frame[i]);
            }

            echoed += pair.TrySend(frame.AsSpan(0, received.Length)) ? 1 : 0;
        }
    }

    return echoed;
}
