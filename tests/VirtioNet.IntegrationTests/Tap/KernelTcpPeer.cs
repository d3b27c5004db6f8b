using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// The kernel's side of a TCP test over the TAP: a socket in the test's namespace that listens on the kernel's address
/// (IPv4 or IPv6), takes one connection from the test TCP endpoint above the driver, and sends or receives a stream.
/// </summary>
internal static class KernelTcpPeer
{
    /// <summary>The kernel side's address on the TAP for IP version 4 or 6.</summary>
    public static IPAddress KernelAddress(int ipVersion) =>
        IPAddress.Parse(ipVersion == 6 ? NetworkNamespace.KernelAddress6 : NetworkNamespace.KernelAddress);

    /// <summary>The address of the test TCP endpoint above the driver for IP version 4 or 6.</summary>
    public static IPAddress DriverAddress(int ipVersion) =>
        IPAddress.Parse(ipVersion == 6 ? NetworkNamespace.DriverAddress6 : NetworkNamespace.DriverAddress);

    /// <summary>
    /// Listens (returning once it does), then sends <paramref name="data"/> to the one connection, shuts its sending side
    /// and waits for the peer's FIN, so the data is acknowledged before the socket goes. The task's result is what
    /// followed the FIN: 0.
    /// </summary>
    public static Task<int> Send(NetworkNamespace ns, int ipVersion, ushort port, byte[] data, TimeSpan timeout) =>
        Serve(ns, ipVersion, port, timeout, client =>
        {
            client.Send(data);
            client.Shutdown(SocketShutdown.Send);
            return client.Receive(new byte[16]);
        });

    /// <summary>Listens (returning once it does), then reads the one connection to its end: the byte count and SHA-256.</summary>
    public static Task<(long Count, byte[] Hash)> Receive(NetworkNamespace ns, int ipVersion, ushort port, TimeSpan timeout) =>
        Serve(ns, ipVersion, port, timeout, client =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] buffer = new byte[256 * 1024];
            long count = 0;
            int n;
            while ((n = client.Receive(buffer)) > 0)
            {
                hash.AppendData(buffer, 0, n);
                count += n;
            }

            return (count, hash.GetHashAndReset());
        });

    // On the namespace's thread: listen on the kernel address, say so, take one connection and run body on it.
    private static Task<T> Serve<T>(NetworkNamespace ns, int ipVersion, ushort port, TimeSpan timeout, Func<Socket, T> body)
    {
        using var listening = new ManualResetEventSlim();
        Task<T> served = ns.Run(() =>
        {
            IPAddress address = KernelAddress(ipVersion);
            Socket client;
            using (var listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp))
            {
                listener.Bind(new IPEndPoint(address, port));
                listener.Listen(1);
                listening.Set();
                if (!listener.Poll(TimeSpan.FromSeconds(30), SelectMode.SelectRead))
                {
                    throw new TimeoutException("No connection reached the kernel side.");
                }

                client = listener.Accept();
            }

            using (client)
            {
                client.ReceiveTimeout = (int)timeout.TotalMilliseconds;
                client.SendTimeout = (int)timeout.TotalMilliseconds;
                return body(client);
            }
        });
        if (!listening.Wait(TimeSpan.FromSeconds(10)))
        {
            if (served.IsFaulted)
            {
                served.GetAwaiter().GetResult();   // why the listener failed
            }

            throw new TimeoutException("The kernel side never listened.");
        }

        return served;
    }
}
