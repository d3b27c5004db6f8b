using System.Reflection;
using PublicApiGenerator;
using Xunit;

namespace VirtioNet.Tests.PublicApi;

/// <summary>
/// The public API of each library, as text checked into this folder: any change to it shows in a diff and must be
/// made on purpose. To accept a change, run the tests with VNET_UPDATE_PUBLIC_API=1 and commit the updated files.
/// </summary>
public sealed class PublicApiTests
{
    public static TheoryData<string> Libraries => new()
    {
        "VirtioNet",
        "VirtioNet.Qemu",
        "VirtioNet.VhostUser",
        "VirtioNet.Diagnostics",
    };

    [Theory]
    [MemberData(nameof(Libraries))]
    public void ThePublicApiIsTheApprovedOne(string library)
    {
        Assembly assembly = Assembly.Load(library);
        string actual = assembly.GeneratePublicApi(new ApiGeneratorOptions { IncludeAssemblyAttributes = false }).ReplaceLineEndings("\n");
        string path = Path.Combine(SourceFolder(), $"{library}.approved.txt");
        if (Environment.GetEnvironmentVariable("VNET_UPDATE_PUBLIC_API") == "1")
        {
            File.WriteAllText(path, actual);
        }

        Assert.True(File.Exists(path), $"{path} is missing: run the tests with VNET_UPDATE_PUBLIC_API=1 to create it.");
        string approved = File.ReadAllText(path).ReplaceLineEndings("\n");
        Assert.True(
            approved == actual,
            $"The public API of {library} changed. If that is intended, run the tests with VNET_UPDATE_PUBLIC_API=1 and commit {path}. " +
            $"First difference near: {FirstDifference(approved, actual)}");
    }

    // The folder of this source file.
    private static string SourceFolder() => RepositoryFiles.PathOf("tests", "VirtioNet.Tests", "PublicApi");

    private static string FirstDifference(string a, string b)
    {
        string[] la = a.Split('\n');
        string[] lb = b.Split('\n');
        for (int i = 0; i < Math.Max(la.Length, lb.Length); i++)
        {
            string x = i < la.Length ? la[i] : "(end)";
            string y = i < lb.Length ? lb[i] : "(end)";
            if (x != y)
            {
                return $"line {i + 1}: approved '{x.Trim()}', now '{y.Trim()}'";
            }
        }

        return "(none)";
    }
}
