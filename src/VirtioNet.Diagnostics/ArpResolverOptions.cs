namespace VirtioNet.Diagnostics;

/// <summary>How <see cref="ArpResolver"/> retries. Values are checked when set.</summary>
public sealed class ArpResolverOptions
{
    /// <summary>Requests sent before giving up. Default 3, as Linux's ucast_solicit/mcast_solicit (3 probes).</summary>
    public int Attempts { get; init => field = OptionChecks.AtLeastOne(value); } = 3;

    /// <summary>How long each request waits for its reply. Default 1 s, Linux's retrans_time.</summary>
    public TimeSpan Timeout { get; init => field = OptionChecks.Positive(value); } = TimeSpan.FromSeconds(1);
}
