namespace VirtioNet.Qemu;

/// <summary>
/// A QEMU machine started by <see cref="QemuMachine.Launch"/> to outlive the process that started it: where its sockets
/// and guest RAM are, so that a driver process (the first, or one started after an earlier one died) can
/// <see cref="QemuMachine.Attach"/> to it.
/// </summary>
public sealed record DetachedQemuMachine
{
    /// <summary>QEMU's process id (a daemon: its parent is not the process that launched it).</summary>
    public required int ProcessId { get; init; }

    /// <summary>The machine's directory: the qtest and QMP sockets QEMU listens on, its park firmware, the driver lock.</summary>
    public required string Directory { get; init; }

    /// <summary>The guest RAM file under /dev/shm, which every driver of the machine maps.</summary>
    public required string RamPath { get; init; }

    /// <summary>The qtest socket QEMU listens on (<c>server=on,wait=off</c>): one driver at a time.</summary>
    public string QtestSocket => Path.Combine(Directory, "qtest.sock");

    /// <summary>The QMP socket QEMU listens on.</summary>
    public string QmpSocket => Path.Combine(Directory, "qmp.sock");

    /// <summary>The file a driver holds an exclusive lock on while it drives the machine; the kernel drops the lock when the driver dies.</summary>
    public string DriverLockPath => Path.Combine(Directory, "driver.lock");

    /// <summary>The process id of the driver that holds (or last held) the lock.</summary>
    public string DriverPidPath => Path.Combine(Directory, "driver.pid");
}
