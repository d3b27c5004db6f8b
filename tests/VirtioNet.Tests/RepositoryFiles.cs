namespace VirtioNet.Tests;

/// <summary>
/// Files of the repository the tests read (and, for the public API snapshots, write) in place: found by walking up
/// from the test binaries to the folder holding VirtioNet.sln.
/// </summary>
internal static class RepositoryFiles
{
    private static readonly Lazy<string> RootFolder = new(FindRoot);

    /// <summary>The repository's root folder.</summary>
    public static string Root => RootFolder.Value;

    /// <summary>A path below the root, from its parts.</summary>
    public static string PathOf(params string[] parts) => Path.Combine([Root, .. parts]);

    private static string FindRoot()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "VirtioNet.sln")))
            {
                return d.FullName;
            }
        }

        throw new DirectoryNotFoundException("VirtioNet.sln not found above " + AppContext.BaseDirectory);
    }
}
