namespace VirtioNet.Tests.Diagnostics;

/// <summary>How <see cref="SimulatedGateway"/> spoils an echo reply.</summary>
public enum EchoReplyFault
{
    None,
    Drop,
    WrongIdentifier,
    WrongSequence,
    WrongPayload,
    BadChecksum,
}
