using VirtioNet.Cli;
using VirtioNet.Cli.Bench;
using VirtioNet.Net;
using Xunit;

namespace VirtioNet.Tests.Cli;

/// <summary>vnet bench --mode: a direction and an operation mode, each at most once, and interrupt only where something is received.</summary>
public sealed class BenchSelectionTests
{
    [Theory]
    [InlineData("", "Tx", OperationMode.Poll)]
    [InlineData("rx", "Rx", OperationMode.Poll)]
    [InlineData("loopback poll", "Loopback", OperationMode.Poll)]
    [InlineData("rx interrupt", "Rx", OperationMode.Interrupt)]
    [InlineData("interrupt loopback", "Loopback", OperationMode.Interrupt)]
    [InlineData("tx poll", "Tx", OperationMode.Poll)]
    [InlineData("rx rx interrupt interrupt", "Rx", OperationMode.Interrupt)]
    [InlineData("rx adaptive", "Rx", OperationMode.Adaptive)]
    [InlineData("adaptive latency", "Latency", OperationMode.Adaptive)]
    public void DirectionAndOperationModeAreReadFromTheModeValues(string values, string direction, OperationMode operation)
    {
        // BenchMode is internal to the tool, so the direction is given by name.
        Assert.Equal(new BenchSelection(Enum.Parse<BenchMode>(direction), operation), BenchSelection.Parse(values.Split(' ', StringSplitOptions.RemoveEmptyEntries)));
    }

    [Theory]
    [InlineData("interrupt", "--mode interrupt waits for received frames, and tx receives none: add --mode rx or --mode loopback.")]
    [InlineData("tx interrupt", "--mode interrupt waits for received frames, and tx receives none: add --mode rx or --mode loopback.")]
    [InlineData("rx loopback", "--mode takes one direction (tx, rx, loopback or latency); got rx and loopback.")]
    [InlineData("rx poll interrupt", "--mode takes one of poll, interrupt or adaptive; got poll and interrupt.")]
    [InlineData("adaptive", "--mode adaptive waits for received frames, and tx receives none: add --mode rx or --mode loopback.")]
    public void ABadCombinationIsOneSentence(string values, string expected)
    {
        CliException e = Assert.Throws<CliException>(() => BenchSelection.Parse(values.Split(' ')));
        Assert.Equal(expected, e.Message);
    }

    [Theory]
    [InlineData("rx", false, "pci", "--pci-interrupts applies in interrupt mode, and bench polls unless told: add --mode interrupt.")]
    [InlineData("rx interrupt", true, "mmio", "--pci-interrupts is for a QEMU PCI device; a vhost-user backend interrupts through its call eventfds.")]
    [InlineData("loopback interrupt", false, "mmio", "--pci-interrupts needs --transport pci or pci-legacy; got mmio.")]
    [InlineData("loopback interrupt", false, "pci-legacy", null)]
    [InlineData("rx interrupt", false, "pci", null)]
    [InlineData("rx adaptive", false, "pci", null)]
    public void AnExplicitPciInterruptLayoutNeedsInterruptModeOnAQemuPciDevice(string values, bool vhostUser, string transport, string? expected)
    {
        Assert.Equal(expected, BenchSelection.Parse(values.Split(' ')).RefusePciInterrupts(vhostUser, transport));
    }
}
