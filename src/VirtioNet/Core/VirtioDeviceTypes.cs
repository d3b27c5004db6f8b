namespace VirtioNet.Core;

/// <summary>Virtio device ids. Ref: virtio v1.2 §5 (Device Types).</summary>
public static class VirtioDeviceTypes
{
    /// <summary>Network card (1).</summary>
    public const uint Network = 1;

    private static readonly Dictionary<uint, string> Names = new()
    {
        [0] = "none",
        [1] = "net",
        [2] = "block",
        [3] = "console",
        [4] = "entropy",
        [5] = "balloon",
        [8] = "scsi",
        [9] = "9p",
        [16] = "gpu",
        [18] = "input",
        [19] = "vsock",
        [20] = "crypto",
        [26] = "fs",
        [41] = "gpio",
    };

    /// <summary>A short name of the device type ("net", "block", ...), or "type N".</summary>
    public static string NameOf(uint deviceId) => Names.GetValueOrDefault(deviceId) ?? $"type {deviceId}";
}
