namespace VirtioNet.IntegrationTests.VhostUser;

/// <summary>This process's open file descriptors, for leak checks.</summary>
internal static class OpenDescriptors
{
    /// <summary>The number of entries in /proc/self/fd.</summary>
    public static int Count() => Directory.GetFileSystemEntries("/proc/self/fd").Length;

    /// <summary>The descriptors that point at memfds, eventfds or unix sockets: the kinds the vhost-user transport opens.</summary>
    public static int CountVhostUserKinds()
    {
        int count = 0;
        foreach (string entry in Directory.GetFileSystemEntries("/proc/self/fd"))
        {
            string? target;
            try
            {
                target = new FileInfo(entry).LinkTarget;
            }
            catch (IOException)
            {
                continue;
            }

            if (target is not null && (target.StartsWith("/memfd:", StringComparison.Ordinal) || target.Contains("eventfd", StringComparison.Ordinal) || target.StartsWith("socket:", StringComparison.Ordinal)))
            {
                count++;
            }
        }

        return count;
    }
}
