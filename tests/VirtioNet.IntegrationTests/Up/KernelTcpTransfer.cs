using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
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
        var ready = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<string> receiving = receiver.Run(() =>
        {
            using var listener = new TcpListener(IPAddress.Parse(listenAddress), 0);
            listener.Start();
            ready.SetResult(((IPEndPoint)listener.LocalEndpoint).Port);
            using Socket socket = listener.AcceptSocket();
            socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] buffer = new byte[256 << 10];
            int total = 0;
            int n;
            while ((n = socket.Receive(buffer)) > 0)
            {
                hash.AppendData(buffer, 0, n);
                total += n;
            }

            Assert.Equal(bytes, total);
            return Convert.ToHexStringLower(hash.GetHashAndReset());
        });
        Assert.True(ready.Task.Wait(timeout), "The receiver did not start listening.");
        int port = ready.Task.Result;
        Task<string> sending = sender.Run(() =>
        {
            using var socket = new Socket(listenAddress.Contains(':', StringComparison.Ordinal) ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.SendTimeout = (int)timeout.TotalMilliseconds;
            socket.Connect(IPAddress.Parse(listenAddress), port);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var random = new Random(bytes);
            byte[] chunk = new byte[1 << 20];
            for (int sent = 0; sent < bytes; sent += chunk.Length)
            {
                random.NextBytes(chunk);
                int length = Math.Min(chunk.Length, bytes - sent);
                hash.AppendData(chunk, 0, length);
                socket.Send(chunk, 0, length, SocketFlags.None);
            }

            socket.Shutdown(SocketShutdown.Send);
            return Convert.ToHexStringLower(hash.GetHashAndReset());
        });
        Assert.True(Task.WaitAll([sending, receiving], timeout), $"The {bytes}-byte transfer did not finish within {timeout.TotalSeconds} s.");
        return (sending.Result, receiving.Result);
    }
}
