using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// A kernel TCP stream whose progress the test watches while it runs (to kill a driver in the middle of it): the
/// receiver counts and hashes what arrives, the sender writes pseudo-random bytes and hashes them.
/// </summary>
internal sealed class WatchedTcpTransfer
{
    private readonly Task<string> _sending;
    private readonly Task<string> _receiving;
    private long _received;

    private WatchedTcpTransfer(Func<Func<string>, Task<string>> runSender, Func<Func<string>, Task<string>> runReceiver, IPAddress listen, IPAddress connect, int bytes, TimeSpan timeout)
    {
        Bytes = bytes;
        var ready = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        _receiving = runReceiver(() =>
        {
            using var listener = new TcpListener(listen, 0);
            listener.Start();
            ready.SetResult(((IPEndPoint)listener.LocalEndpoint).Port);
            using Socket socket = listener.AcceptSocket();
            socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] buffer = new byte[256 << 10];
            int n;
            while ((n = socket.Receive(buffer)) > 0)
            {
                hash.AppendData(buffer, 0, n);
                Interlocked.Add(ref _received, n);
            }

            return Convert.ToHexStringLower(hash.GetHashAndReset());
        });
        Assert.True(ready.Task.Wait(timeout), "The receiver did not start listening.");
        int port = ready.Task.Result;
        _sending = runSender(() =>
        {
            using var socket = new Socket(connect.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            socket.SendTimeout = (int)timeout.TotalMilliseconds;
            socket.Connect(connect, port);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var random = new Random(bytes);
            byte[] chunk = new byte[256 << 10];
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
    }

    public int Bytes { get; }

    /// <summary>Bytes the receiver has taken so far.</summary>
    public long Received => Interlocked.Read(ref _received);

    public bool Failed => _sending.IsFaulted || _receiving.IsFaulted;

    public string Failure => $"{_sending.Exception?.InnerException?.Message} {_receiving.Exception?.InnerException?.Message}";

    /// <summary>Starts the stream: the receiver listens on <paramref name="listen"/> (run by <paramref name="runReceiver"/>), the sender connects to <paramref name="connect"/>.</summary>
    public static WatchedTcpTransfer Start(
        Func<Func<string>, Task<string>> runReceiver, IPAddress listen, Func<Func<string>, Task<string>> runSender, IPAddress connect, int bytes, TimeSpan timeout) =>
        new(runSender, runReceiver, listen, connect, bytes, timeout);

    /// <summary>Waits until <paramref name="condition"/> holds or the transfer failed; false on timeout.</summary>
    public static bool WaitFor(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout)
            {
                return false;
            }

            Thread.Sleep(10);
        }

        return true;
    }

    /// <summary>Waits for both ends and returns their digests.</summary>
    public (string Sent, string Received) Finish(TimeSpan timeout, Func<string> log)
    {
        Assert.True(Task.WaitAll([_sending, _receiving], timeout), $"The transfer did not finish within {timeout.TotalSeconds} s ({Received} of {Bytes} bytes):\n{log()}");
        return (_sending.Result, _receiving.Result);
    }
}
