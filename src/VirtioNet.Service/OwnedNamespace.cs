using System.Diagnostics;

namespace VirtioNet.Service;

/// <summary>A network namespace the service created (<c>ip netns add</c>) and deletes on dispose (<c>ip netns del</c>).</summary>
internal sealed class OwnedNamespace : IDisposable
{
    private OwnedNamespace(string name) => Name = name;

    public string Name { get; }

    public static OwnedNamespace Create(string name)
    {
        Ip("netns", "add", name);
        return new OwnedNamespace(name);
    }

    public void Dispose()
    {
        try
        {
            Ip("netns", "del", Name);
        }
        catch (ServiceException)
        {
            // Best effort at teardown; the message would repeat the cause of an earlier failure.
        }
    }

    private static void Ip(params string[] arguments)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start) ?? throw new ServiceException("ip (iproute2) could not be started");
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new ServiceException($"ip {string.Join(' ', arguments)} failed: {error.Trim()}");
        }
    }
}
