namespace VirtioNet.Diagnostics;

/// <summary>The settings of a <see cref="DiagnosticClient"/>'s parts; each default is documented where it is defined.</summary>
public sealed class DiagnosticClientOptions
{
    /// <summary>DHCP retransmission.</summary>
    public DhcpClientOptions Dhcp { get; init; } = new();

    /// <summary>ARP retries.</summary>
    public ArpResolverOptions Arp { get; init; } = new();

    /// <summary>The ARP cache; a default one (60 s lifetime, 64 entries) if null.</summary>
    public ArpCache? ArpCache { get; init; }

    /// <summary>How long a full transmit ring is retried; <see cref="DiagnosticLink"/>'s default (1 s) if null.</summary>
    public TimeSpan? TransmitTimeout { get; init; }
}
