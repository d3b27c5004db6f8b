// Brings up QEMU's virtio-net device on a riscv64 virt machine (QEMU's user network, no root needed), prints its MAC
// address and link, and asks the gateway 10.0.2.2 for its MAC address with an ARP request: one frame out, one in.
// Needs qemu-system-riscv64 (Debian: qemu-system-misc) and util-linux's setpriv. Usage: QemuBringUp
using System.ComponentModel;
using System.Globalization;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Qemu;

try
{
    return BringUp();
}
catch (Exception e) when (e is VirtioException or IOException or TimeoutException or Win32Exception)
{
    Console.Error.WriteLine($"QemuBringUp: {e.Message}");
    return 1;
}

static int BringUp()
{
    byte[] self = [10, 0, 2, 15], gateway = [10, 0, 2, 2];
    using RiscvVirtBoard board = RiscvVirtBoard.Start(new QemuMachineOptions());
    using VirtioNetDevice device = board.OpenNetDevice(baseAddress: null, new VirtioNetOptions());
    byte[] mac = device.MacAddress.ToArray();
    Console.WriteLine($"MAC {Format(mac)}");
    Console.WriteLine($"link {(device.IsLinkUp ? "up" : "down")}");

    // ARP who-has 10.0.2.2 tell 10.0.2.15, broadcast (RFC 826): Ethernet header, then the 28-byte ARP body.
    byte[] request = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, .. mac, 0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, .. mac, .. self, 0, 0, 0, 0, 0, 0, .. gateway];
    VirtioNetQueuePair pair = device.Pairs[0];
    if (!pair.TrySend(request))
    {
        throw new IOException("the transmit ring is full");
    }

    var frame = new byte[pair.MaxReceiveFrameLength];
    for (int wait = 0; wait < 50; wait++)
    {
        pair.WaitForReceive(TimeSpan.FromMilliseconds(100));
        while (pair.TryReceive(frame, out ReceivedFrame received))
        {
            // An ARP reply (EtherType 0x0806, operation 2) whose sender is the gateway.
            if (received.Length >= 42 && frame[12] == 0x08 && frame[13] == 0x06 && frame[21] == 2 && frame.AsSpan(28, 4).SequenceEqual(gateway))
            {
                Console.WriteLine($"10.0.2.2 is at {Format(frame.AsSpan(22, 6))}");
                return 0;
            }
        }
    }

    throw new TimeoutException("no ARP reply from 10.0.2.2 within 5 s");
}

static string Format(ReadOnlySpan<byte> mac) =>
    string.Join(':', mac.ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
