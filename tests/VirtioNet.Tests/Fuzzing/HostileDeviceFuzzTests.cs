using Xunit;

namespace VirtioNet.Tests.Fuzzing;

/// <summary>
/// The driver against <see cref="HostileDeviceFuzzer"/>: a short fixed budget on every run, every seed that ever failed
/// replayed from the corpus, and the long run when asked for with VNET_FUZZ_BEHAVIOURS (docs/HARDENING.md).
/// </summary>
public class HostileDeviceFuzzTests
{
    // Steps per case: long enough to wrap small rings several times and recover more than once.
    private const int StepsPerCase = 400;

    /// <summary>Seeds that once failed, one per line with what they found after '#': a regression suite.</summary>
    public static TheoryData<int> CorpusSeeds()
    {
        var seeds = new TheoryData<int>();
        string path = Path.Combine(AppContext.BaseDirectory, "Fuzzing", "corpus.txt");
        foreach (string line in File.ReadAllLines(path))
        {
            string seed = line.Split('#')[0].Trim();
            if (seed.Length > 0)
            {
                seeds.Add(int.Parse(seed, System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return seeds;
    }

    [Fact]
    public void AFixedBudgetOfHostileDeviceBehavioursCausesNoCrashHangOrStrayAccess()
    {
        long behaviours = 0;
        for (int seed = 1; behaviours < 20_000; seed++)
        {
            behaviours += HostileDeviceFuzzer.Run(seed, StepsPerCase).Behaviours;
        }

        Assert.True(behaviours >= 20_000);
    }

    [Theory]
    [MemberData(nameof(CorpusSeeds))]
    public void EverySeedThatOnceFailedNowPasses(int seed) => HostileDeviceFuzzer.Run(seed, StepsPerCase);

    [Fact]
    public void TheLongRunPlaysAsManyBehavioursAsAskedWithoutAFinding()
    {
        string? asked = Environment.GetEnvironmentVariable("VNET_FUZZ_BEHAVIOURS");
        if (string.IsNullOrEmpty(asked))
        {
            Assert.Skip("Set VNET_FUZZ_BEHAVIOURS (and optionally VNET_FUZZ_FIRST_SEED) for the long run.");
        }

        long target = long.Parse(asked, System.Globalization.CultureInfo.InvariantCulture);
        int first = int.Parse(Environment.GetEnvironmentVariable("VNET_FUZZ_FIRST_SEED") ?? "1000000", System.Globalization.CultureInfo.InvariantCulture);
        long behaviours = 0;
        long driverErrors = 0;
        int cases = 0;
        var findings = new List<string>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int seed = first; behaviours < target && findings.Count < 50; seed++)
        {
            cases++;
            try
            {
                HostileDeviceFuzzer fuzzer = HostileDeviceFuzzer.Run(seed, StepsPerCase);
                behaviours += fuzzer.Behaviours;
                driverErrors += fuzzer.DriverErrors;
            }
            catch (HostileDeviceFuzzer.FuzzFailure failure)
            {
                findings.Add(failure.ToString());
            }
        }

        string summary = $"hostile device fuzz: {cases} cases (seeds {first}..{first + cases - 1}), {behaviours} device behaviours, "
            + $"{driverErrors} driver errors (VirtioException, allowed), {findings.Count} findings, {clock.Elapsed.TotalSeconds:F0} s";
        string report = Environment.GetEnvironmentVariable("VNET_FUZZ_REPORT") ?? Path.Combine(Path.GetTempPath(), "vnet-fuzz-report.txt");
        File.WriteAllLines(report, [summary, .. findings]);
        Assert.True(findings.Count == 0, $"{summary}; the findings are in {report}");
        Assert.True(behaviours >= target);
    }
}
