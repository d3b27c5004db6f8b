namespace VirtioNet.Diagnostics;

/// <summary>Why a <see cref="DiagnosticsException"/> was thrown.</summary>
public enum DiagnosticsErrorReason
{
    /// <summary>No DHCP server answered DHCPDISCOVER with a DHCPOFFER.</summary>
    NoDhcpOffer,

    /// <summary>The DHCP server answered DHCPREQUEST with DHCPNAK.</summary>
    DhcpNak,

    /// <summary>The DHCP server did not answer DHCPREQUEST.</summary>
    NoDhcpAck,

    /// <summary>A DHCP reply lacked something a lease needs (an address).</summary>
    InvalidDhcpReply,

    /// <summary>No ARP reply arrived for an address.</summary>
    ArpUnresolved,

    /// <summary>The operation needs an IPv4 address and none is configured (no lease yet).</summary>
    NotConfigured,

    /// <summary>The target is off the local subnet and no router is configured.</summary>
    NoRoute,

    /// <summary>The transmit ring stayed full for longer than the transmit timeout.</summary>
    TransmitStalled,
}
