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

    // Each drop reason as a tag value, with its reader.
    private static readonly (string Value, Func<VirtioNetQueueStatistics, long> Read)[] DropReasons =
    [
        ("caller_span_too_short", s => s.GetDrops(VirtioNetDropReason.CallerSpanTooShort)),
        ("in_flight_at_recovery", s => s.GetDrops(VirtioNetDropReason.InFlightAtRecovery)),
        ("segment_not_queued", s => s.GetDrops(VirtioNetDropReason.SegmentNotQueued)),
    ];

    // The devices that are up, each with its instance number; replaced, never changed, so collection reads it without
    // the lock.
    private static (VirtioNetDevice Device, int Instance)[] _devices = [];

    // The last instance number given.
    private static int _lastInstance;

    static VirtioNetTelemetry()
    {
        Queue("virtionet.packets", "{packet}", "Frames delivered (rx) or handed to the device (tx).", s => s.Packets);
        Queue("virtionet.bytes", "By", "Bytes of those frames, without the virtio_net_hdr.", s => s.Bytes);
        QueueBy("virtionet.drops", "{packet}", "Frames the driver dropped, tagged with the reason: caller_span_too_short, in_flight_at_recovery, segment_not_queued.",
            "reason", DropReasons);
        Queue("virtionet.ring_full", "{event}", "Send attempts the transmit ring turned away for want of room.", s => s.RingFull);
        QueueBy("virtionet.checksums", "{packet}", "Checksums left to the device (by=device) or computed by the driver (by=driver), per direction.",
            "by", [("device", s => s.ChecksumsByDevice), ("driver", s => s.ChecksumsByDriver)]);
        QueueBy("virtionet.segmentation", "{packet}", "Packets segmented by the device (tx GSO, rx coalesced; by=device) or cut by the driver (by=driver).",
            "by", [("device", s => s.SegmentationByDevice), ("driver", s => s.SegmentationByDriver)]);
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
            _devices = [.. _devices, (device, ++_lastInstance)];
        }
    }

    /// <summary>Stops measuring a device that is being disposed.</summary>
    public static void Unregister(VirtioNetDevice device)
    {
        lock (Gate)
        {
            _devices = [.. _devices.Where(d => d.Device != device)];
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

    // One instrument whose measurements are split by a tag (the reason, who did it), a reader per tag value.
    private static void QueueBy(string name, string unit, string description, string tag, (string Value, Func<VirtioNetQueueStatistics, long> Read)[] parts) =>
        Meter.CreateObservableCounter(name, () =>
        {
            var measurements = new List<Measurement<long>>();
            foreach ((string value, Func<VirtioNetQueueStatistics, long> read) in parts)
            {
                foreach (Measurement<long> m in MeasureQueues(read))
                {
                    measurements.Add(new Measurement<long>(m.Value, [.. m.Tags, Tag(tag, value)]));
                }
            }

            return measurements;
        }, unit, description);

    private static void Device(string name, string unit, string description, Func<VirtioNetDevice, long> read) =>
        Meter.CreateObservableCounter(name, () => MeasureDevices(read), unit, description);

    private static List<Measurement<long>> MeasureQueues(Func<VirtioNetQueueStatistics, long> read)
    {
        var measurements = new List<Measurement<long>>();
        foreach ((VirtioNetDevice device, int instance) in Volatile.Read(ref _devices))
        {
            string name = device.TransportDescription;
            IReadOnlyList<VirtioNetQueuePair> pairs = device.Pairs;
            for (int i = 0; i < pairs.Count; i++)
            {
                measurements.Add(new Measurement<long>(read(pairs[i].ReceiveStatistics), Tag("device", name), Tag("instance", instance), Tag("queue", i), Tag("direction", "rx")));
                measurements.Add(new Measurement<long>(read(pairs[i].TransmitStatistics), Tag("device", name), Tag("instance", instance), Tag("queue", i), Tag("direction", "tx")));
            }
        }

        return measurements;
    }

    private static List<Measurement<long>> MeasureDevices(Func<VirtioNetDevice, long> read)
    {
        var measurements = new List<Measurement<long>>();
        foreach ((VirtioNetDevice device, int instance) in Volatile.Read(ref _devices))
        {
            measurements.Add(new Measurement<long>(read(device), Tag("device", device.TransportDescription), Tag("instance", instance)));
        }

        return measurements;
    }

    private static KeyValuePair<string, object?> Tag(string key, object value) => new(key, value);
}
