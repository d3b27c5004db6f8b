using System.Net;
using System.Net.Sockets;

namespace VirtioNet.IntegrationTests.Net;

/// <summary>
/// The test's end of QEMU's <c>-netdev socket,udp=...,localaddr=...</c>: every Ethernet frame the device sends arrives
/// here as one UDP datagram, and every datagram sent to QEMU's port is delivered to the device as one frame. Loopback only.
/// </summary>
internal sealed class UdpWire : IDisposable
{
    private readonly UdpClient _socket;

    public UdpWire()
    {
        _socket = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        LocalPort = ((IPEndPoint)_socket.Client.LocalEndPoint!).Port;

        // QEMU binds localaddr itself; find a free port by binding and releasing it.
        using var probe = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        QemuPort = ((IPEndPoint)probe.Client.LocalEndPoint!).Port;
    }

    /// <summary>Where QEMU sends the device's frames (our socket).</summary>
    public int LocalPort { get; }

    /// <summary>Where QEMU listens for frames to deliver to the device.</summary>
    public int QemuPort { get; }

    /// <summary>The -netdev argument for QEMU.</summary>
    public string Netdev => $"socket,id=n0,udp=127.0.0.1:{LocalPort},localaddr=127.0.0.1:{QemuPort}";

    public void Inject(byte[] frame) => _socket.Send(frame, frame.Length, new IPEndPoint(IPAddress.Loopback, QemuPort));

    /// <summary>The next frame the device sent, or null after <paramref name="timeout"/>.</summary>
    public byte[]? Receive(TimeSpan timeout)
    {
        _socket.Client.ReceiveTimeout = (int)timeout.TotalMilliseconds;
        try
        {
            IPEndPoint? from = null;
            return _socket.Receive(ref from);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
        {
            return null;
        }
    }

    public void Dispose() => _socket.Dispose();
}
