using System.Diagnostics;
using System.Net.Sockets;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>
/// What a vhost-user transport does with peers that are not (good) backends: one clear <see cref="VirtioException"/>,
/// no hang, and no descriptor or mapping left behind. The peers are a missing path, a silent socket, and a scripted
/// software backend for the replies a real one does not send.
/// </summary>
[Collection(VhostUserCollection.Name)]
public sealed class VhostUserBadInputTests
{
    private static readonly VirtioNetOptions PollSplit = new() { OperationMode = OperationMode.Poll, DisabledFeatures = VirtioFeatures.RingPacked };

    [Fact]
    public void SocketPathThatDoesNotExistFailsWithOneClearError()
    {
        AssertNoDescriptorLeak(() =>
        {
            string path = Path.Combine(Path.GetTempPath(), $"vnet-no-such-{Guid.NewGuid():N}.sock");
            using var memory = new VhostUserDmaAllocator(1 << 20);

            var error = Assert.Throws<VirtioException>(() => VhostUserTransport.Connect(
                new VhostUserOptions { SocketPath = path, ConnectTimeout = TimeSpan.FromMilliseconds(200) }, memory, TestContext.Current.CancellationToken));

            Assert.Equal(VirtioErrorReason.PlatformFailure, error.Reason);
            Assert.Contains(path, error.Message, StringComparison.Ordinal);
            Assert.Contains("does not exist", error.Message, StringComparison.Ordinal);
        });
    }

    [Fact]
    public void UnixSocketThatNeverAnswersTimesOutInsteadOfHanging()
    {
        AssertNoDescriptorLeak(() =>
        {
            string directory = Directory.CreateTempSubdirectory("vnet-vu-silent-").FullName;
            try
            {
                string path = Path.Combine(directory, "silent.sock");
                using var silent = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                silent.Bind(new UnixDomainSocketEndPoint(path));
                silent.Listen(4);
                using var memory = new VhostUserDmaAllocator(1 << 20);
                var clock = Stopwatch.StartNew();

                // The kernel completes the connection from the backlog; nobody ever reads or answers.
                var error = Assert.Throws<VirtioException>(() => VhostUserTransport.Connect(
                    new VhostUserOptions { SocketPath = path, ReplyTimeout = TimeSpan.FromMilliseconds(300) }, memory, TestContext.Current.CancellationToken));

                Assert.Equal(VirtioErrorReason.Timeout, error.Reason);
                Assert.Contains("did not answer GET_FEATURES", error.Message, StringComparison.Ordinal);
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"took {clock.Elapsed}");
            }
            finally
            {
                Directory.Delete(directory, recursive: true);
            }
        });
    }

    [Fact]
    public void BackendThatClosesMidHandshakeFailsWithWentAway()
    {
        AssertConnectFails(
            (header, payload) => header.Request == VhostUserRequest.GetProtocolFeatures ? null : ScriptedVhostUserBackend.Standard(header, payload),
            VirtioErrorReason.PlatformFailure,
            "went away (it closed the connection instead of answering GET_PROTOCOL_FEATURES)");
    }

    [Fact]
    public void ReplyWithAnotherRequestIdIsRefused()
    {
        AssertConnectFails(
            (header, payload) => header.Request == VhostUserRequest.GetFeatures
                ? ScriptedVhostUserBackend.ReplyU64(VhostUserRequest.SetFeatures, 0)
                : ScriptedVhostUserBackend.Standard(header, payload), VirtioErrorReason.PlatformFailure, "answered GET_FEATURES with a reply to request 2");
    }

    [Fact]
    public void ReplyOfTheWrongSizeIsRefused()
    {
        AssertConnectFails(
            (header, payload) => header.Request == VhostUserRequest.GetFeatures
                ? ScriptedVhostUserBackend.Reply(VhostUserRequest.GetFeatures, [1, 2, 3, 4])
                : ScriptedVhostUserBackend.Standard(header, payload), VirtioErrorReason.PlatformFailure, "payload of 4 bytes; expected 8");
    }

    [Fact]
    public void ReplyWithoutTheReplyFlagIsRefused()
    {
        AssertConnectFails(
            (header, payload) => header.Request == VhostUserRequest.GetFeatures
                ? ScriptedVhostUserBackend.Reply(VhostUserRequest.GetFeatures, new byte[8], flags: 0x1)
                : ScriptedVhostUserBackend.Standard(header, payload), VirtioErrorReason.PlatformFailure, "without the reply flag");
    }

    [Fact]
    public void BackendWithFewerQueuePairsThanAskedIsRefused()
    {
        AssertConnectFails(
            (header, payload) => ScriptedVhostUserBackend.Standard(header, payload, protocol: VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Mq, queuePairs: 1), VirtioErrorReason.QueueUnavailable, "offers 1 queue pair(s); 2 were asked for", queuePairs: 2);
    }

    [Fact]
    public void MemoryTableTheBackendRefusesFailsTheOpenAndLeaksNothing()
    {
        AssertNoDescriptorLeak(() =>
        {
            using var backend = new ScriptedVhostUserBackend((header, payload) => ScriptedVhostUserBackend.Standard(header, payload, refuse: VhostUserRequest.SetMemTable));
            using var memory = new VhostUserDmaAllocator(1 << 20);
            using (VhostUserTransport transport = VhostUserTransport.Connect(new VhostUserOptions { SocketPath = backend.SocketPath }, memory, TestContext.Current.CancellationToken))
            {
                var error = Assert.Throws<VirtioException>(() => VirtioNetDevice.Open(transport, memory, PollSplit));

                Assert.Equal(VirtioErrorReason.PlatformFailure, error.Reason);
                Assert.Contains("refused SET_MEM_TABLE", error.Message, StringComparison.Ordinal);
                Assert.Equal(0, memory.AllocatedRegions);
            }

            Assert.True(backend.WaitUntilDisconnected(TimeSpan.FromSeconds(5)));
        });
    }

    [Fact]
    public void FeaturesTheBackendRefusesFailTheOpenAsFeaturesRefused()
    {
        using var backend = new ScriptedVhostUserBackend((header, payload) => ScriptedVhostUserBackend.Standard(header, payload, refuse: VhostUserRequest.SetFeatures));
        using var memory = new VhostUserDmaAllocator(1 << 20);
        using VhostUserTransport transport = VhostUserTransport.Connect(new VhostUserOptions { SocketPath = backend.SocketPath }, memory, TestContext.Current.CancellationToken);

        var error = Assert.Throws<VirtioException>(() => VirtioNetDevice.Open(transport, memory, PollSplit));

        Assert.Equal(VirtioErrorReason.FeaturesRefused, error.Reason);
        Assert.DoesNotContain(VhostUserRequest.SetMemTable, backend.Received);
        Assert.Equal(0, memory.AllocatedRegions);
    }

    [Fact]
    public void ListeningOnAPathThatExistsIsRefusedWithoutTouchingIt()
    {
        string directory = Directory.CreateTempSubdirectory("vnet-vu-exists-").FullName;
        try
        {
            string path = Path.Combine(directory, "taken");
            File.WriteAllText(path, "not a socket");
            using var memory = new VhostUserDmaAllocator(1 << 20);

            var error = Assert.Throws<VirtioException>(() => VhostUserTransport.Connect(
                new VhostUserOptions { SocketPath = path, SocketMode = VhostUserSocketMode.Listen, ConnectTimeout = TimeSpan.FromMilliseconds(100) },
                memory,
                TestContext.Current.CancellationToken));

            Assert.Contains("the path exists", error.Message, StringComparison.Ordinal);
            Assert.Equal("not a socket", File.ReadAllText(path));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void ListenModeWithoutABackendTimesOutAndRemovesItsSocket()
    {
        AssertNoDescriptorLeak(() =>
        {
            string directory = Directory.CreateTempSubdirectory("vnet-vu-listen-").FullName;
            try
            {
                string path = Path.Combine(directory, "lonely.sock");
                using var memory = new VhostUserDmaAllocator(1 << 20);

                var error = Assert.Throws<VirtioException>(() => VhostUserTransport.Connect(
                    new VhostUserOptions { SocketPath = path, SocketMode = VhostUserSocketMode.Listen, ConnectTimeout = TimeSpan.FromMilliseconds(200) },
                    memory,
                    TestContext.Current.CancellationToken));

                Assert.Equal(VirtioErrorReason.Timeout, error.Reason);
                Assert.False(File.Exists(path));
            }
            finally
            {
                Directory.Delete(directory, recursive: true);
            }
        });
    }

    /// <summary>
    /// Runs <paramref name="scenario"/> twice and checks that the second run leaves the descriptor count as it found it:
    /// the first run pays for what the runtime opens once and keeps (its socket engine's epoll and wake-up descriptors).
    /// </summary>
    internal static void AssertNoDescriptorLeak(Action scenario)
    {
        scenario();
        int before = StableDescriptorCount();
        scenario();
        int after = StableDescriptorCount();
        Assert.True(before == after, $"{after - before} descriptor(s) leaked:\n" + string.Join("\n", Directory.GetFileSystemEntries("/proc/self/fd").Select(e => e + " -> " + new FileInfo(e).LinkTarget)));
    }

    /// <summary>Descriptor count after finalizers ran, so that a collected handle of an earlier test does not read as a change.</summary>
    internal static int StableDescriptorCount()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return OpenDescriptors.Count();
    }

    private static void AssertConnectFails(Func<VhostUserHeader, byte[], byte[]?> respond, VirtioErrorReason reason, string text, int queuePairs = 1)
    {
        AssertNoDescriptorLeak(() =>
        {
            using var backend = new ScriptedVhostUserBackend(respond);
            using var memory = new VhostUserDmaAllocator(1 << 20);

            var error = Assert.Throws<VirtioException>(() => VhostUserTransport.Connect(
                new VhostUserOptions { SocketPath = backend.SocketPath, ReplyTimeout = TimeSpan.FromSeconds(2), QueuePairs = queuePairs },
                memory,
                TestContext.Current.CancellationToken));

            Assert.Equal(reason, error.Reason);
            Assert.Contains(text, error.Message, StringComparison.Ordinal);
            Assert.Contains(backend.SocketPath, error.Message, StringComparison.Ordinal);
            Assert.True(backend.WaitUntilDisconnected(TimeSpan.FromSeconds(5)), "the transport kept the connection open after failing");
        });
    }
}
