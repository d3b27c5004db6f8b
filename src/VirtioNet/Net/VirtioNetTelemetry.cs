using System.Diagnostics.Metrics;
using VirtioNet.Core;

namespace VirtioNet.Net;

/// <summary>
/// The driver's statistics as a <see cref="Meter"/> named "VirtioNet" (dotnet-counters, OpenTelemetry, an in-process
/// <see cref="MeterListener"/>), and its events reported to <see cref="VirtioEventSource"/>. Every instrument is
/// observable: it reads the counters the queues already keep when someone collects, so the packet path does not change
/// and pays nothing while nobody listens. Each device that is up is measured, tagged with <c>device</c> (its
/// transport's description) and, per queue, <c>queue</c> (the pair's index) and <c>direction</c> (<c>rx</c>/<c>tx</c>).
/// </summary>
internal static class VirtioNetTelemetry
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "VirtioNet";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Lock Gate = new();

    // The devices that are up; replaced, never changed, so collection reads it without the lock.
    private static VirtioNetDevice[] _devices = [];

    static VirtioNetTelemetry()
    {
        Queue("virtionet.packets", "{packet}", "Frames delivered (rx) or handed to the device (tx).", s => s.Packets);
        Queue("virtionet.bytes", "By", "Bytes of those frames, without the virtio_net_hdr.", s => s.Bytes);
        Queue("virtionet.drops", "{packet}", "Frames the driver dropped: no buffer, too long for the caller, in flight at a recovery.", s => s.Drops);
        Queue("virtionet.errors", "{packet}", "Frames the device returned malformed (dropped).", s => s.Errors);
        Queue("virtionet.notifications", "{notification}", "Available-buffer notifications sent to the device.", s => s.Notifications);
        Queue("virtionet.interrupts", "{interrupt}", "Used-buffer interrupts that woke the queue's waiter with work.", s => s.Interrupts);
        Queue("virtionet.coalesced_segments", "{segment}", "TCP segments the device coalesced into received frames (RSC_EXT).", s => s.CoalescedSegments);
        Device("virtionet.recoveries", "{recovery}", "Times the device was reset and set up again.", d => d.Recoveries);
        Device("virtionet.recovery.dropped_transmits", "{packet}", "Transmitted frames in the device's hands at a failure.", d => d.RecoveryDroppedTransmits);
        Device("virtionet.control.completed", "{command}", "Control-queue commands the device acknowledged.", d => d.Control.CommandsCompleted);
        Device("virtionet.control.rejected", "{command}", "Control-queue commands the device refused.", d => d.Control.CommandsRejected);
        Device("virtionet.configuration_interrupts", "{interrupt}", "Configuration-change interrupts taken.", d => d.ConfigurationInterrupts);
    }

    /// <summary>Starts measuring a device that came up.</summary>
    public static void Register(VirtioNetDevice device)
    {
        lock (Gate)
        {
            _devices = [.. _devices, device];
        }
    }

    /// <summary>Stops measuring a device that is being disposed.</summary>
    public static void Unregister(VirtioNetDevice device)
    {
        lock (Gate)
        {
            _devices = [.. _devices.Where(d => d != device)];
        }
    }

    /// <summary>Reports a device event to the event source, at the level its kind deserves.</summary>
    public static void Report(string device, VirtioNetDeviceEventKind kind, string? detail)
    {
        VirtioEventSource log = VirtioEventSource.Log;
        if (!log.IsEnabled())
        {
            return;
        }

        switch (kind)
        {
            case VirtioNetDeviceEventKind.QueueBroken:
                log.QueueBroken(device, detail ?? "");
                break;
            case VirtioNetDeviceEventKind.Recovered:
                log.Recovered(device, detail ?? "");
                break;
            default:
                log.DeviceEvent(device, kind.ToString());
                break;
        }
    }

    private static void Queue(string name, string unit, string description, Func<VirtioNetQueueStatistics, long> read) =>
        Meter.CreateObservableCounter(name, () => MeasureQueues(read), unit, description);

    private static void Device(string name, string unit, string description, Func<VirtioNetDevice, long> read) =>
        Meter.CreateObservableCounter(name, () => MeasureDevices(read), unit, description);

    private static List<Measurement<long>> MeasureQueues(Func<VirtioNetQueueStatistics, long> read)
    {
        var measurements = new List<Measurement<long>>();
        foreach (VirtioNetDevice device in Volatile.Read(ref _devices))
        {
            string name = device.TransportDescription;
            IReadOnlyList<VirtioNetQueuePair> pairs = device.Pairs;
            for (int i = 0; i < pairs.Count; i++)
            {
                measurements.Add(new Measurement<long>(read(pairs[i].ReceiveStatistics), Tag("device", name), Tag("queue", i), Tag("direction", "rx")));
                measurements.Add(new Measurement<long>(read(pairs[i].TransmitStatistics), Tag("device", name), Tag("queue", i), Tag("direction", "tx")));
            }
        }

        return measurements;
    }

    private static List<Measurement<long>> MeasureDevices(Func<VirtioNetDevice, long> read)
    {
        var measurements = new List<Measurement<long>>();
        foreach (VirtioNetDevice device in Volatile.Read(ref _devices))
        {
            measurements.Add(new Measurement<long>(read(device), Tag("device", device.TransportDescription)));
        }

        return measurements;
    }

    private static KeyValuePair<string, object?> Tag(string key, object value) => new(key, value);
}
