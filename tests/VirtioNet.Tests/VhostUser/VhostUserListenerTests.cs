using VirtioNet.Core;
using VirtioNet.VhostUser;
using Xunit;

namespace VirtioNet.Tests.VhostUser;

/// <summary>
/// The listening socket of client mode when its path is taken: a stale socket (its listener gone, as a driver killed
/// with SIGKILL leaves it) is reused; a socket someone listens on, a regular file and a directory are refused and left
/// as they were. Kernel unix sockets in a temporary directory; no peer.
/// </summary>
public sealed class VhostUserListenerTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("vnet-listener-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public void AStaleSocketWhoseListenerIsGoneIsReusedAndABackendCanConnectToTheNewListener()
    {
        string path = StaleSocket();

        using VhostUserListener listener = VhostUserListener.Listen(path);
        using VhostUserChannel backend = VhostUserChannel.Connect(path, TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
        using VhostUserChannel accepted = listener.Accept(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
        Assert.False(accepted.IsBroken);
    }

    [Fact]
    public void ASocketSomeoneListensOnIsRefusedAndItsListenerKeepsServing()
    {
        string path = Path.Combine(_directory.FullName, "live.sock");
        using VhostUserListener live = VhostUserListener.Listen(path);

        var error = Assert.Throws<VirtioException>(() => VhostUserListener.Listen(path));
        Assert.Equal(VirtioErrorReason.PlatformFailure, error.Reason);
        Assert.Contains("another process listens on that socket", error.Message, StringComparison.Ordinal);

        // The socket file is still the live listener's: a backend connecting now is accepted by it.
        Assert.True(File.Exists(path));
        using VhostUserChannel backend = VhostUserChannel.Connect(path, TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
        using VhostUserChannel accepted = live.Accept(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
    }

    [Fact]
    public void ARegularFileOrADirectoryAtThePathIsRefusedAndLeftAsItWas()
    {
        string file = Path.Combine(_directory.FullName, "file.sock");
        File.WriteAllText(file, "someone's data");
        string directory = Path.Combine(_directory.FullName, "directory.sock");
        Directory.CreateDirectory(directory);

        var fileError = Assert.Throws<VirtioException>(() => VhostUserListener.Listen(file));
        var directoryError = Assert.Throws<VirtioException>(() => VhostUserListener.Listen(directory));

        Assert.Contains("the path exists and is not a socket", fileError.Message, StringComparison.Ordinal);
        Assert.Contains("the path exists and is not a socket", directoryError.Message, StringComparison.Ordinal);
        Assert.Equal("someone's data", File.ReadAllText(file));
        Assert.True(Directory.Exists(directory));
    }

    // A socket file without a listener: a listener's file moved aside before the listener closes (its own removal then
    // finds nothing), which is what a process killed before it could remove its socket leaves.
    private string StaleSocket()
    {
        string path = Path.Combine(_directory.FullName, "stale.sock");
        string bound = Path.Combine(_directory.FullName, "bound.sock");
        using (VhostUserListener.Listen(bound))
        {
            File.Move(bound, path);
        }

        Assert.True(File.Exists(path));
        return path;
    }
}
