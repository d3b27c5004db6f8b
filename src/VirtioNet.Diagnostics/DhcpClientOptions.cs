namespace VirtioNet.Diagnostics;

/// <summary>How <see cref="DhcpClient"/> retransmits. Values are checked when set.</summary>
public sealed class DhcpClientOptions
{
    /// <summary>Transmissions of each message (DHCPDISCOVER, then DHCPREQUEST) before giving up. Default 4.</summary>
    public int Attempts { get; init => field = OptionChecks.AtLeastOne(value); } = 4;

    /// <summary>
    /// Wait after the first transmission; doubled after each one up to <see cref="MaximumTimeout"/>, the exponential
    /// back-off of RFC 2131 §4.1. Default 1 s rather than the RFC's 4 s: the diagnostic client talks to one local
    /// server (slirp answers at once) and a person is waiting.
    /// </summary>
    public TimeSpan InitialTimeout { get; init => field = OptionChecks.Positive(value); } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait after one transmission. Default 8 s.</summary>
    public TimeSpan MaximumTimeout { get; init => field = OptionChecks.Positive(value); } = TimeSpan.FromSeconds(8);

    /// <summary>
    /// Whether to set the BROADCAST flag (RFC 2131 §4.1), asking the server to broadcast its replies because the
    /// client cannot yet receive unicast IP. This client accepts frames for its MAC and broadcast alike, so either
    /// works with a well-behaved server; broadcasting is the choice every server and relay handles. Default true.
    /// </summary>
    public bool RequestBroadcastReplies { get; init; } = true;
}
