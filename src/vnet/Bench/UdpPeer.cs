using System.Net;
using System.Net.Sockets;

namespace VirtioNet.Cli.Bench;

/// <summary>
/// The far end of QEMU's UDP socket netdev for benchmarks on a QEMU machine: drains and counts what the device sends
/// (tx), generates frames for it (rx), or sends back what arrives (loopback, latency). Loopback addresses only.
/// </summary>
internal sealed class UdpPeer : IDisposable
{
    private readonly UdpClient _socket;
    private readonly CancellationTokenSource _stop = new();
    private Thread? _thread;
    private long _received;

    public UdpPeer()
    {
        _socket = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        _socket.Client.ReceiveTimeout = 200;
        LocalPort = ((IPEndPoint)_socket.Client.LocalEndPoint!).Port;
        using var probe = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        QemuPort = ((IPEndPoint)probe.Client.LocalEndPoint!).Port;
    }

    public int LocalPort { get; }

    public int QemuPort { get; }

    public string Netdev => $"socket,id=n0,udp=127.0.0.1:{LocalPort},localaddr=127.0.0.1:{QemuPort}";

    public long Received => Interlocked.Read(ref _received);

    public void Start(BenchMode mode, byte[] frame)
    {
        _thread = new Thread(() => Run(mode, frame)) { IsBackground = true, Name = "bench UDP peer" };
        _thread.Start();
    }

    private void Run(BenchMode mode, byte[] frame)
    {
        var qemu = new IPEndPoint(IPAddress.Loopback, QemuPort);
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                if (mode == BenchMode.Rx)
                {
                    _socket.Send(frame, frame.Length, qemu);
                    continue;
                }

                IPEndPoint? from = null;
                byte[] data = _socket.Receive(ref from);
                Interlocked.Increment(ref _received);
                if (mode is BenchMode.Loopback or BenchMode.Latency)
                {
                    _socket.Send(data, data.Length, qemu);
                }
            }
            catch (SocketException)
            {
                // A receive timeout (to look at the stop flag) or QEMU not listening yet.
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _thread?.Join(TimeSpan.FromSeconds(2));
        _socket.Dispose();
        _stop.Dispose();
    }
}
