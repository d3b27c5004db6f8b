using System.Net;
using VirtioNet.IntegrationTests.Tap;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// A TCP stream between kernel sockets in two namespaces: the sender writes pseudo-random bytes, the receiver hashes
/// what arrives; both SHA-256 digests come back for the test to compare.
/// </summary>
internal static class KernelTcpTransfer
{
    public static (string Sent, string Received) Run(NetworkNamespace receiver, string listenAddress, NetworkNamespace sender, int bytes, TimeSpan timeout)
    {
        IPAddress address = IPAddress.Parse(listenAddress);
        WatchedTcpTransfer transfer = WatchedTcpTransfer.Start(receiver.Run, address, sender.Run, address, bytes, timeout);
        (string sent, string received) = transfer.Finish(timeout, () => string.Empty);
        Assert.Equal(bytes, transfer.Received);
        return (sent, received);
    }
}
