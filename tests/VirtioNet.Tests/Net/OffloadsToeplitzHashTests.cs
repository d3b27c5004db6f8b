using System.Net;
using VirtioNet.Net.Offloads;
using Xunit;

namespace VirtioNet.Tests.Net;

/// <summary>
/// The Toeplitz hash against Microsoft's RSS verification suite (the vectors the virtio spec's RSS section relies on, also
/// in Intel's 82599 datasheet §7.1.2.8.3), with the default key.
/// </summary>
public sealed class OffloadsToeplitzHashTests
{
    [Theory]
    [InlineData("66.9.149.187", 2794, "161.142.100.80", 1766, 0x323e8fc2u, 0x51ccc178u)]
    [InlineData("199.92.111.2", 14230, "65.69.140.83", 4739, 0xd718262au, 0xc626b0eau)]
    [InlineData("24.19.198.95", 12898, "12.22.207.184", 38024, 0xd2d0a5deu, 0x5c2b394au)]
    [InlineData("38.27.205.30", 48228, "209.142.163.6", 2217, 0x82989176u, 0xafc7327fu)]
    [InlineData("153.39.163.191", 44251, "202.188.127.2", 1303, 0x5d1809c5u, 0x10e828a2u)]
    [InlineData("3ffe:2501:200:1fff::7", 2794, "3ffe:2501:200:3::1", 1766, 0x2cc18cd5u, 0x40207d3du)]
    [InlineData("3ffe:501:8::260:97ff:fe40:efab", 14230, "ff02::1", 4739, 0x0f0c461cu, 0xdde51bbfu)]
    [InlineData("3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, "fe80::200:f8ff:fe21:67cf", 38024, 0x4b61e985u, 0x02d1feefu)]
    public void TheVerificationSuiteHashesMatch(string source, int sourcePort, string destination, int destinationPort, uint addressesOnly, uint withPorts)
    {
        IPAddress src = IPAddress.Parse(source);
        IPAddress dst = IPAddress.Parse(destination);
        Assert.Equal(addressesOnly, ToeplitzHash.ComputeAddresses(ToeplitzHash.DefaultKey, src, dst));
        Assert.Equal(withPorts, ToeplitzHash.ComputeAddressesAndPorts(ToeplitzHash.DefaultKey, src, dst, (ushort)sourcePort, (ushort)destinationPort));
    }

    [Fact]
    public void SwappingSourceAndDestinationChangesTheHash()
    {
        IPAddress a = IPAddress.Parse("66.9.149.187");
        IPAddress b = IPAddress.Parse("161.142.100.80");
        Assert.NotEqual(
            ToeplitzHash.ComputeAddressesAndPorts(ToeplitzHash.DefaultKey, a, b, 2794, 1766),
            ToeplitzHash.ComputeAddressesAndPorts(ToeplitzHash.DefaultKey, b, a, 1766, 2794));
    }

    [Fact]
    public void AKeyTooShortForTheInputIsRefused() =>
        Assert.Throws<ArgumentException>(() => ToeplitzHash.Compute(ToeplitzHash.DefaultKey[..20], new byte[36]));

    [Fact]
    public void MixedAddressFamiliesAreRefused() =>
        Assert.Throws<ArgumentException>(() => ToeplitzHash.ComputeAddresses(ToeplitzHash.DefaultKey, IPAddress.Loopback, IPAddress.IPv6Loopback));
}
