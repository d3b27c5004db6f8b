using System.Collections.Concurrent;
using System.Diagnostics;
using VirtioNet.Net;
using VirtioNet.Service;
using Xunit;

namespace VirtioNet.IntegrationTests.Up;

/// <summary>
/// <c>vnet up</c>'s service run in the test's process on a device the test opened (so the test keeps the QEMU machine,
/// its monitor and guest RAM), with its control socket in the default directory under a unique name, so that the
/// <c>vnet</c> tool's clients find it as they find any instance. Dispose stops it and checks it left nothing behind.
/// </summary>
internal sealed class InProcessService : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private Exception? _failure;

    private InProcessService(VirtioNetDevice device, TapServiceOptions options)
    {
        Options = options;
        _thread = new Thread(() =>
        {
            try
            {
                TapService.Run(new DeviceLink(device), options, Log.Enqueue, _stop.Token);
            }
            catch (Exception e)
            {
                _failure = e;
            }
        })
        { IsBackground = true, Name = "service under test" };
    }

    public TapServiceOptions Options { get; }

    /// <summary>The instance's name, as the tool's clients name it.</summary>
    public string Name => Options.InstanceName!;

    public ConcurrentQueue<string> Log { get; } = new();

    /// <summary>Starts the service for <paramref name="device"/> with a TAP of name <paramref name="tap"/> in <paramref name="netns"/>, and waits until it carries traffic.</summary>
    public static InProcessService Start(VirtioNetDevice device, string tap, string netns, bool dhcp = false, bool offloads = true)
    {
        var options = new TapServiceOptions
        {
            TapName = tap,
            Namespace = netns,
            InstanceName = $"{tap}-{Environment.ProcessId}",
            ControlDirectory = ControlServer.DefaultDirectory,
            Dhcp = dhcp,
            Offloads = offloads,
        };
        var service = new InProcessService(device, options);
        service._thread.Start();
        service.WaitFor(() => service.Log.Any(l => l.Contains(" carries traffic", StringComparison.Ordinal)), "the service to carry traffic");
        return service;
    }

    /// <summary>Waits until <paramref name="condition"/> holds, failing with the service's log after a bounded time.</summary>
    public void WaitFor(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.Null(_failure);
            Assert.True(clock.Elapsed < Patience, $"Waited {Patience.TotalSeconds} s for {what}.\n{string.Join('\n', Log)}");
            Thread.Sleep(50);
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        bool stopped = _thread.Join(Patience);
        _stop.Dispose();
        Assert.True(stopped, "The service did not stop.");
        Assert.Null(_failure);
        Assert.False(File.Exists(ControlServer.PathFor(ControlServer.DefaultDirectory, Name)), "The control socket was left behind.");
    }
}
