using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace VirtioNet.IntegrationTests.Tap;

/// <summary>
/// A network namespace of the test's own, uniquely named, with a TAP device for QEMU's <c>-netdev tap</c>: the kernel's
/// TCP/IP on the far side of the virtio-net device. Everything is deleted on <see cref="Dispose"/>.
/// </summary>
/// <remarks>
/// QEMU opens the TAP by name in its own namespace, so the TAP is created in the root namespace, QEMU attaches to it
/// (<see cref="TapName"/> in <see cref="Netdev"/>), and <see cref="MoveTapIn"/> then moves it into the namespace: an
/// attached TAP keeps its file descriptor across the move (tried on this kernel: frames flow after it). Deleting the
/// namespace deletes the TAP with it; the TAP is also deleted by name in case the move never happened.
/// <para>
/// The namespace's name carries the test process's id. QEMU dies with a killed test process (setpriv --pdeathsig),
/// but a named namespace and a persistent TAP do not: <see cref="Create"/> first deletes the namespaces, and the TAPs
/// of the same suffix, of test processes that no longer exist (with whatever a test put in them, e.g. a switch's ports).
/// </para>
/// </remarks>
internal sealed partial class NetworkNamespace : IDisposable
{
    /// <summary>The kernel side's address on the TAP.</summary>
    public const string KernelAddress = "10.77.0.1";

    /// <summary>The address the test TCP endpoint above the driver uses.</summary>
    public const string DriverAddress = "10.77.0.2";

    /// <summary>The kernel side's IPv6 address on the TAP (unique local, RFC 4193).</summary>
    public const string KernelAddress6 = "fd77::1";

    /// <summary>The IPv6 address the test TCP endpoint above the driver uses; the kernel finds it by neighbour discovery.</summary>
    public const string DriverAddress6 = "fd77::2";

    /// <summary>The kernel side's MAC on the TAP (set explicitly so the endpoint needs no ARP).</summary>
    public static readonly byte[] KernelMac = [0x02, 0x00, 0x00, 0x77, 0x00, 0x01];

    private const int CloneNewNet = 0x40000000;

    private const string NamePrefix = "vnet-";
    private const string TapPrefix = "vt";

    private bool _moved;

    private NetworkNamespace(string name, string tap)
    {
        Name = name;
        TapName = tap;
    }

    /// <summary>The namespace's name (under /run/netns).</summary>
    public string Name { get; }

    /// <summary>The TAP device's name.</summary>
    public string TapName { get; }

    /// <summary>The <c>-netdev</c> argument that attaches QEMU to the TAP with the virtio-net header (offloads).</summary>
    public string Netdev => $"tap,id=n0,ifname={TapName},script=no,downscript=no,vnet_hdr=on";

    /// <summary>Creates the namespace and, in the root namespace, the TAP.</summary>
    public static NetworkNamespace Create()
    {
        RemoveLeftoversOfDeadProcesses();
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var ns = new NetworkNamespace($"{NamePrefix}{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{suffix}", $"{TapPrefix}{suffix}");
        try
        {
            Ip($"netns add {ns.Name}");
            Ip($"tuntap add dev {ns.TapName} mode tap");
            Ip($"-n {ns.Name} link set lo up");
            return ns;
        }
        catch
        {
            ns.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Moves the TAP (already opened by QEMU) into the namespace and configures it: MTU, MAC, addresses, up, and a
    /// permanent neighbour entry for the driver's IPv4 address. The IPv6 address skips duplicate address detection
    /// (<c>nodad</c>), so it is usable at once; the driver's IPv6 address is left to neighbour discovery.
    /// </summary>
    public void MoveTapIn(int mtu, ReadOnlySpan<byte> driverMac)
    {
        Ip($"link set {TapName} netns {Name}");
        _moved = true;
        Ip($"-n {Name} link set {TapName} address {Mac(KernelMac)} mtu {mtu.ToString(CultureInfo.InvariantCulture)}");
        Ip($"-n {Name} addr add {KernelAddress}/24 dev {TapName}");
        Ip($"-n {Name} addr add {KernelAddress6}/64 dev {TapName} nodad");
        Ip($"-n {Name} link set {TapName} up");
        Ip($"-n {Name} neigh replace {DriverAddress} lladdr {Mac(driverMac)} dev {TapName} nud permanent");
    }

    /// <summary>
    /// Moves the TAP (already opened by QEMU) into the namespace and brings it up with no address and no IPv6 link-local
    /// address (<c>addrgenmode none</c>): for a TAP that becomes a switch port, so the kernel sends nothing of its own
    /// through it.
    /// </summary>
    public void MoveTapInUnaddressed(int mtu)
    {
        Ip($"link set {TapName} netns {Name}");
        _moved = true;
        Ip($"-n {Name} link set {TapName} addrgenmode none mtu {mtu.ToString(CultureInfo.InvariantCulture)}");
        Ip($"-n {Name} link set {TapName} up");
    }

    /// <summary>
    /// Runs <paramref name="body"/> on a thread of its own that has entered the namespace (setns affects only the
    /// calling thread), so the sockets it creates live there. The thread ends with the body.
    /// </summary>
    public Task<T> Run<T>(Func<T> body)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                using (var handle = File.OpenHandle($"/run/netns/{Name}"))
                {
                    if (SetNs(handle.DangerousGetHandle().ToInt32(), CloneNewNet) != 0)
                    {
                        throw new InvalidOperationException($"setns into {Name} failed: errno {Marshal.GetLastPInvokeError()}.");
                    }
                }

                done.SetResult(body());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        })
        {
            IsBackground = true,
            Name = $"netns {Name}",
        };
        thread.Start();
        return done.Task;
    }

    /// <summary>Runs <c>ip ARGS</c> inside the namespace and returns its output.</summary>
    public string IpInside(string arguments) => Ip($"-n {Name} {arguments}");

    /// <summary>Runs <paramref name="command"/> (words separated by spaces) inside the namespace (<c>ip netns exec</c>) and returns its output.</summary>
    public string ExecInside(string command) => Ip($"netns exec {Name} {command}");

    public void Dispose()
    {
        TryIp($"netns delete {Name}");
        if (!_moved)
        {
            TryIp($"link delete {TapName}");
        }
    }

    // Names are vnet-PID-SUFFIX (namespace) and vtSUFFIX (TAP). A name of another form is left alone.
    private static void RemoveLeftoversOfDeadProcesses()
    {
        if (!Directory.Exists("/run/netns"))
        {
            return;
        }

        foreach (string path in Directory.EnumerateFileSystemEntries("/run/netns", NamePrefix + "*"))
        {
            string name = Path.GetFileName(path);
            string[] parts = name[NamePrefix.Length..].Split('-');
            if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid)
                && pid != Environment.ProcessId && !Directory.Exists($"/proc/{parts[0]}"))
            {
                TryIp($"netns delete {name}");
                TryIp($"link delete {TapPrefix}{parts[1]}");
            }
        }
    }

    private static string Mac(ReadOnlySpan<byte> mac) => Convert.ToHexStringLower(mac).Chunk(2).Select(c => new string(c)).Aggregate((a, b) => $"{a}:{b}");

    private static string Ip(string arguments)
    {
        var (code, output) = Run(arguments);
        if (code != 0)
        {
            throw new InvalidOperationException($"ip {arguments} failed ({code}): {output}");
        }

        return output;
    }

    private static void TryIp(string arguments) => Run(arguments);

    private static (int Code, string Output) Run(string arguments)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output.Trim());
    }

    [DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int SetNs(int fd, int nstype);
}
