namespace VirtioNet.Diagnostics;

/// <summary>How <see cref="ArpResolver"/> retries. Values are checked when set.</summary>
public sealed class ArpResolverOptions
{
    private readonly int _attempts = 3;
    private readonly TimeSpan _timeout = TimeSpan.FromSeconds(1);

    /// <summary>Requests sent before giving up. Default 3, as Linux's ucast_solicit/mcast_solicit (3 probes).</summary>
    public int Attempts
    {
        get => _attempts;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _attempts = value;
        }
    }

    /// <summary>How long each request waits for its reply. Default 1 s, Linux's retrans_time.</summary>
    public TimeSpan Timeout
    {
        get => _timeout;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(value, TimeSpan.Zero);
            _timeout = value;
        }
    }
}
