using System.Text.RegularExpressions;
using Xunit;

namespace VirtioNet.Tests.Architecture;

/// <summary>
/// docs/FEATURES.md names, for every feature, the tests that prove it. A test renamed or removed without the table
/// following would leave a claim that nothing backs: every test class and method the table names must exist in the
/// test sources (unit and integration).
/// </summary>
public sealed partial class FeatureTableTests
{
    [Fact]
    public void EveryTestTheFeatureTableNamesExists()
    {
        string table = File.ReadAllText(RepositoryFiles.PathOf("docs", "FEATURES.md"));
        var sources = Directory.EnumerateFiles(RepositoryFiles.PathOf("tests"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Select(File.ReadAllText)
            .ToList();
        var classes = sources.SelectMany(s => ClassDeclaration().Matches(s)).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        var methods = sources.SelectMany(s => TestMethodDeclaration().Matches(s)).Select(m => m.Groups[1].Value).ToList();

        var missing = new List<string>();
        int checkedNames = 0;
        foreach (Match code in InlineCode().Matches(table))
        {
            // `Class`, `Class.Method` or `Class.MethodPrefix…` (the table shortens long names with an ellipsis).
            Match name = TestReference().Match(code.Groups[1].Value);
            if (!name.Success)
            {
                continue;
            }

            checkedNames++;
            string type = name.Groups["class"].Value;
            string method = name.Groups["method"].Value;
            bool shortened = name.Groups["ellipsis"].Success;
            if (!classes.Contains(type))
            {
                missing.Add(code.Groups[1].Value);
            }
            else if (method.Length > 0 && !methods.Any(m => shortened ? m.StartsWith(method, StringComparison.Ordinal) : m == method))
            {
                missing.Add(code.Groups[1].Value);
            }
        }

        Assert.True(checkedNames > 100, $"only {checkedNames} test names found in docs/FEATURES.md: has its format changed?");
        Assert.True(missing.Count == 0, $"docs/FEATURES.md names tests that do not exist: {string.Join(", ", missing)}");
    }

    [GeneratedRegex(@"`([^`\n]+)`")]
    private static partial Regex InlineCode();

    [GeneratedRegex(@"^(?<class>[A-Z]\w*Tests)(?:\.(?<method>[A-Z]\w*)(?<ellipsis>…)?)?$")]
    private static partial Regex TestReference();

    [GeneratedRegex(@"\bclass\s+(\w+)")]
    private static partial Regex ClassDeclaration();

    [GeneratedRegex(@"\b(?:void|Task)\s+(\w+)\s*\(")]
    private static partial Regex TestMethodDeclaration();
}
