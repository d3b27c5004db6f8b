namespace VirtioNet.Transports;

/// <summary>A transport that can list its registers for a debug dump (the seed driver's register dump).</summary>
public interface IRegisterDump
{
    /// <summary>
    /// Reads every readable register, including the per-queue ones of queues 0 to <paramref name="queueCount"/> - 1.
    /// Selecting queues changes only the selector register, which the driver rewrites before every per-queue access.
    /// </summary>
    IReadOnlyList<RegisterValue> ReadRegisters(int queueCount);
}
