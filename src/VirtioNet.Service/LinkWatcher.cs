using System.Buffers.Binary;
using System.Globalization;

namespace VirtioNet.Service;

/// <summary>
/// Carries what the kernel is told about the TAP to the device: <c>ip link set address</c> (CTRL_MAC_ADDR), <c>ip link
/// set mtu</c> (honoured up to the device's MTU, refused with a log line and set back beyond it), the promiscuous and
/// all-multicast flags (CTRL_RX) and the interface's multicast list (the MAC table, CTRL_MAC_TABLE_SET). A thread of its
/// own inside the TAP's namespace listens to the link notifications (RTM_NEWLINK on RTMGRP_LINK) and, as the kernel
/// sends none for link-layer multicast changes, rereads the list (<c>/proc/thread-self/net/dev_mcast</c>) every half second.
/// </summary>
internal sealed unsafe class LinkWatcher : IDisposable
{
    private const int RescanMilliseconds = 500;

    private readonly DeviceLink _link;
    private readonly TapInterface _tap;
    private readonly RouteNetlink _control;
    private readonly Announcer _announcer;
    private readonly Action<string> _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private readonly int _deviceMtu;
    private readonly ManualResetEventSlim _ready = new();

    // What the device was last told, so only changes are sent.
    private byte[] _mac;
    private int _mtu;
    private uint _flags;
    private string _multicast = "";
    private Exception? _startFailure;

    public LinkWatcher(DeviceLink link, TapInterface tap, RouteNetlink control, Announcer announcer, Action<string> log)
    {
        _link = link;
        _tap = tap;
        _control = control;
        _announcer = announcer;
        _log = log;
        _mac = link.MacAddress;
        _mtu = link.Mtu;
        _deviceMtu = link.MaxMtu;
        _thread = new Thread(Run) { IsBackground = true, Name = $"vnet link {tap.Name}" };
    }

    /// <summary>Starts watching, after telling the device the kernel's starting state (not promiscuous, its multicast list).</summary>
    public void Start()
    {
        _thread.Start();
        _ready.Wait();
        if (_startFailure is not null)
        {
            throw new ServiceException($"watching {_tap.Name}'s link notifications: {_startFailure.Message}", _startFailure);
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        if (_thread.IsAlive)
        {
            _thread.Join(TimeSpan.FromSeconds(5));
        }

        _stop.Dispose();
        _ready.Dispose();
    }

    private void Run()
    {
        int fd = -1;
        try
        {
            if (_tap.Namespace is { } netns)
            {
                NamespaceThread.Enter(netns);
            }

            fd = OpenSocket();
            ApplyFlags(0, initial: true);
            RescanMulticast();
        }
#pragma warning disable CA1031 // Carried to Start's caller.
        catch (Exception e)
#pragma warning restore CA1031
        {
            _startFailure = e;
            _ready.Set();
            if (fd >= 0)
            {
                _ = Interop.Unistd.Close(fd);
            }

            return;
        }

        _ready.Set();
        byte[] buffer = new byte[16384];
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                nint received;
                // SAFETY: recv writes at most buffer.Length bytes into the pinned buffer.
                fixed (byte* p = buffer)
                {
                    received = Interop.Netlink.Receive(fd, p, (nuint)buffer.Length, 0);
                }

                if (received > 0)
                {
                    Parse(buffer.AsSpan(0, (int)received));
                }

                RescanMulticast();
            }
        }
#pragma warning disable CA1031 // The pumps go on without the watcher; the log says why.
        catch (Exception e)
#pragma warning restore CA1031
        {
            _log($"{_tap.Name}: stopped following the kernel's link changes: {e.Message}");
        }
        finally
        {
            _ = Interop.Unistd.Close(fd);
        }
    }

    private static int OpenSocket()
    {
        int fd = Interop.Netlink.Socket(Interop.Netlink.AF_NETLINK, Interop.Netlink.SOCK_RAW | Interop.Netlink.SOCK_CLOEXEC, Interop.Netlink.NETLINK_ROUTE);
        if (fd < 0)
        {
            throw Interop.Failure("opening a NETLINK_ROUTE socket", Interop.LastErrno);
        }

        Interop.Netlink.SocketAddressNetlink address = new() { Family = Interop.Netlink.AF_NETLINK, Groups = Interop.Netlink.RTMGRP_LINK | Interop.Netlink.RTMGRP_IPV4_IFADDR | Interop.Netlink.RTMGRP_IPV6_IFADDR };
        if (Interop.Netlink.Bind(fd, &address, (uint)sizeof(Interop.Netlink.SocketAddressNetlink)) != 0)
        {
            int errno = Interop.LastErrno;
            _ = Interop.Unistd.Close(fd);
            throw Interop.Failure("joining RTMGRP_LINK", errno);
        }

        Interop.Netlink.TimeValue timeout = new() { Microseconds = RescanMilliseconds * 1000 };
        _ = Interop.Netlink.SetSocketOption(fd, Interop.Netlink.SOL_SOCKET, Interop.Netlink.SO_RCVTIMEO, &timeout, (uint)sizeof(Interop.Netlink.TimeValue));
        return fd;
    }

    // Every RTM_NEWLINK for the TAP: nlmsghdr (16), ifinfomsg (16: family, type, index, flags, change), attributes.
    private void Parse(ReadOnlySpan<byte> messages)
    {
        while (messages.Length >= 16)
        {
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(messages);
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(messages[4..]);
            if (length < 16 || length > messages.Length)
            {
                return;
            }

            ReadOnlySpan<byte> message = messages[..length];
            if (type is Interop.Netlink.RTM_NEWADDR or Interop.Netlink.RTM_DELADDR && length >= 24)
            {
                ParseAddress(message, type == Interop.Netlink.RTM_NEWADDR);
            }

            if (type == Interop.Netlink.RTM_NEWLINK && length >= 32 && BinaryPrimitives.ReadInt32LittleEndian(message[20..]) == (int)_tap.Index)
            {
                uint flags = BinaryPrimitives.ReadUInt32LittleEndian(message[24..]);
                byte[]? mac = null;
                int mtu = 0;
                ReadOnlySpan<byte> attributes = message[32..];
                while (NextAttribute(ref attributes, out ushort attributeType, out ReadOnlySpan<byte> value))
                {
                    if (attributeType == Interop.Netlink.IFLA_ADDRESS && value.Length == 6)
                    {
                        mac = value.ToArray();
                    }
                    else if (attributeType == Interop.Netlink.IFLA_MTU && value.Length == 4)
                    {
                        mtu = BinaryPrimitives.ReadInt32LittleEndian(value);
                    }
                }

                ApplyFlags(flags, initial: false);
                if (mac is not null && !mac.AsSpan().SequenceEqual(_mac))
                {
                    ApplyMac(mac);
                }

                if (mtu > 0 && mtu != _mtu)
                {
                    ApplyMtu(mtu);
                }
            }

            messages = messages[Math.Min(messages.Length, (length + 3) & ~3)..];
        }
    }

    // RTM_NEWADDR/RTM_DELADDR for the TAP: ifaddrmsg (8: family, prefixlen, flags, scope, index), then IFA_ADDRESS.
    private void ParseAddress(ReadOnlySpan<byte> message, bool added)
    {
        if (BinaryPrimitives.ReadInt32LittleEndian(message[20..]) != (int)_tap.Index)
        {
            return;
        }

        ReadOnlySpan<byte> attributes = message[24..];
        while (NextAttribute(ref attributes, out ushort attributeType, out ReadOnlySpan<byte> value))
        {
            if (attributeType == Interop.Netlink.IFA_ADDRESS && value.Length is 4 or 16)
            {
                var address = new System.Net.IPAddress(value);
                if (added)
                {
                    _announcer.Add(address);
                }
                else
                {
                    _announcer.Remove(address);
                }

                return;
            }
        }
    }

    // struct rtattr: length (header included), type, value padded to 4 bytes. False at the end or on a bad length.
    private static bool NextAttribute(ref ReadOnlySpan<byte> attributes, out ushort type, out ReadOnlySpan<byte> value)
    {
        type = 0;
        value = default;
        if (attributes.Length < 4)
        {
            return false;
        }

        int length = BinaryPrimitives.ReadUInt16LittleEndian(attributes);
        if (length < 4 || length > attributes.Length)
        {
            return false;
        }

        type = BinaryPrimitives.ReadUInt16LittleEndian(attributes[2..]);
        value = attributes[4..length];
        attributes = attributes[Math.Min(attributes.Length, (length + 3) & ~3)..];
        return true;
    }

    private void ApplyFlags(uint flags, bool initial)
    {
        uint changed = initial ? Interop.Netlink.IFF_PROMISC | Interop.Netlink.IFF_ALLMULTI : (flags ^ _flags) & (Interop.Netlink.IFF_PROMISC | Interop.Netlink.IFF_ALLMULTI);
        _flags = flags;
        if ((changed & Interop.Netlink.IFF_PROMISC) != 0)
        {
            bool on = (flags & Interop.Netlink.IFF_PROMISC) != 0;
            Report(_link.TrySetPromiscuous(on, out string? why), $"promiscuous {(on ? "on" : "off")}", why, initial);
        }

        if ((changed & Interop.Netlink.IFF_ALLMULTI) != 0)
        {
            bool on = (flags & Interop.Netlink.IFF_ALLMULTI) != 0;
            Report(_link.TrySetAllMulticast(on, out string? why), $"all-multicast {(on ? "on" : "off")}", why, initial);
        }
    }

    private void ApplyMac(byte[] mac)
    {
        string text = string.Join(':', mac.Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
        if (_link.TrySetMacAddress(mac, out string? why))
        {
            _mac = mac;
            _log($"{_tap.Name}: MAC address {text} set on the device");
            return;
        }

        _log($"{_tap.Name}: the device refused MAC address {text} ({why}); set back");
        _control.SetLink(_tap.Index, _mac, 0, up: true);
    }

    private void ApplyMtu(int mtu)
    {
        if (mtu > _deviceMtu || mtu < 68)
        {
            string bound = _link.MtuFromDevice ? "the device takes" : "the device reports no MTU and the driver's buffers were sized for (vnet up --max-mtu)";
            _log($"{_tap.Name}: MTU {mtu} refused: {bound} 68 to {_deviceMtu}; set back to {_mtu}");
            _control.SetLink(_tap.Index, default, _mtu, up: true);
            return;
        }

        _mtu = mtu;
        _log($"{_tap.Name}: MTU {mtu}");
    }

    // The interface's link-layer multicast addresses, as the kernel lists them for its namespace.
    private void RescanMulticast()
    {
        var addresses = new List<byte[]>();
        foreach (string line in File.ReadLines("/proc/thread-self/net/dev_mcast"))
        {
            string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 5 && fields[1] == _tap.Name && fields[4].Length == 12)
            {
                addresses.Add(Convert.FromHexString(fields[4]));
            }
        }

        string key = string.Join(',', addresses.Select(Convert.ToHexStringLower).Order(StringComparer.Ordinal));
        if (key == _multicast)
        {
            return;
        }

        _multicast = key;
        Report(_link.TrySetMulticastList(addresses, out string? why), $"multicast list [{key}]", why, initial: false);
    }

    private void Report(bool done, string what, string? why, bool initial)
    {
        if (done)
        {
            _log($"{_tap.Name}: {what} on the device");
        }
        else if (!initial)
        {
            _log($"{_tap.Name}: {what} not passed to the device: {why}");
        }
    }
}
