using System.Globalization;

namespace VirtioNet.Service;

/// <summary>
/// The lock an instance of <c>vnet up</c> holds for its whole life (<c>NAME.lock</c> beside its control socket), so that
/// two processes never serve, adopt or remove the same instance's interface at once. The kernel drops it when the holder
/// dies, even by SIGKILL, so a dead instance never blocks the one started after it.
/// </summary>
internal sealed class InstanceLock : IDisposable
{
    private readonly FileStream _file;

    private InstanceLock(FileStream file) => _file = file;

    /// <summary>Takes the lock of instance <paramref name="name"/>, or says who holds it.</summary>
    /// <exception cref="ServiceException">When a running process holds it.</exception>
    public static InstanceLock Acquire(string directory, string name)
    {
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ServiceException($"cannot make {directory}: {e.Message}", e);
        }

        string path = Path.Combine(directory, name + ".lock");
        try
        {
            // FileShare.None makes .NET take flock(LOCK_EX | LOCK_NB) on the file.
            var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            file.SetLength(0);
            byte[] pid = System.Text.Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
            file.Write(pid);
            file.Flush();
            return new InstanceLock(file);
        }
        catch (IOException e)
        {
            throw new ServiceException($"instance '{name}' is already running (another process holds {path})", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new ServiceException($"cannot open {path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Removes the file and releases the lock, so a stopped instance leaves nothing in the directory. A process that
    /// opened the file just before the removal fails to lock it and says the instance is running, which it was.
    /// </summary>
    public void Dispose()
    {
        try
        {
            File.Delete(_file.Name);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The lock is released below either way; the empty file is harmless.
        }

        _file.Dispose();
    }
}
