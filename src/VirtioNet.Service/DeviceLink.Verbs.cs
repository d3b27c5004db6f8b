using System.Globalization;
using System.Net.NetworkInformation;
using System.Text.Json;
using System.Text.Json.Nodes;
using VirtioNet.Core;
using VirtioNet.Net;
using VirtioNet.Net.Filtering;
using VirtioNet.Net.MultiQueue;
using VirtioNet.Net.Statistics;
using VirtioNet.Transports;
using VirtioNet.Virtqueues;

namespace VirtioNet.Service;

/// <summary>
/// What the ethtool-style verbs of <c>vnet</c> (stats, offloads, channels, rss, filter, vlan, mtu, dump) read from and
/// change on a device, as one JSON report each. The same methods serve a running instance (its control socket, on the
/// control socket's thread) and the one-shot mode (a private machine), so both print the same thing. Only the
/// device's facets that are safe beside the running pumps are used: statistics (readable at any time), the control
/// plane (serialized by its own lock, recorded for recovery), and read-only snapshots of registers and rings; never a
/// queue pair's data path.
/// </summary>
internal sealed partial class DeviceLink
{
    /// <summary>The receive modes by the names <c>vnet filter</c> gives them (its options without the dashes).</summary>
    public static readonly IReadOnlyList<(string Name, ReceiveFilterFlags Flag)> ReceiveModes =
    [
        ("promisc", ReceiveFilterFlags.Promiscuous),
        ("allmulti", ReceiveFilterFlags.AllMulticast),
        ("allunicast", ReceiveFilterFlags.AllUnicast),
        ("nomulticast", ReceiveFilterFlags.NoMulticast),
        ("nounicast", ReceiveFilterFlags.NoUnicast),
        ("nobroadcast", ReceiveFilterFlags.NoBroadcast),
    ];

    /// <summary>
    /// <c>vnet stats</c>: every queue's counters, the device's recoveries and control-queue counts and, with
    /// VIRTIO_NET_F_DEVICE_STATS, the device's own counters. A device that answers the statistics query badly leaves
    /// <c>deviceStatistics</c> null and says why in <c>deviceStatisticsError</c> (present only then).
    /// </summary>
    public JsonObject StatsReport()
    {
        DeviceStatistics? device = null;
        string? deviceError = null;
        if (_device.Control.HasDeviceStatistics)
        {
            try
            {
                device = _device.Control.GetDeviceStatistics();
            }
            catch (VirtioException e)
            {
                deviceError = e.Message;
            }
        }

        IEnumerable<VirtioNetQueueStatistics> queues =
            _device.Pairs.Select(p => p.ReceiveStatistics).Concat(_device.Pairs.Select(p => p.TransmitStatistics));
        var report = new JsonObject
        {
            ["queues"] = new JsonArray([.. queues.Select(q => (JsonNode)new JsonObject
            {
                ["name"] = q.Name,
                ["packets"] = q.Packets,
                ["bytes"] = q.Bytes,
                ["drops"] = q.Drops,
                ["errors"] = q.Errors,
                ["notifications"] = q.Notifications,
                ["interrupts"] = q.Interrupts,
                ["coalescedSegments"] = q.CoalescedSegments,
                ["ringFull"] = q.RingFull,
                ["checksumsByDevice"] = q.ChecksumsByDevice,
                ["checksumsByDriver"] = q.ChecksumsByDriver,
                ["segmentationByDevice"] = q.SegmentationByDevice,
                ["segmentationByDriver"] = q.SegmentationByDriver,
                ["dropsByReason"] = new JsonObject(Enum.GetValues<VirtioNetDropReason>().Select(r => KeyValuePair.Create(JsonNamingPolicy.CamelCase.ConvertName(r.ToString()), (JsonNode?)q.GetDrops(r)))),
            })]),
            ["configurationInterrupts"] = _device.ConfigurationInterrupts,
            ["recoveries"] = _device.Recoveries,
            ["recoveryDroppedTransmits"] = _device.RecoveryDroppedTransmits,
            ["controlCommandsCompleted"] = _device.Control.CommandsCompleted,
            ["controlCommandsRejected"] = _device.Control.CommandsRejected,
            ["deviceStatistics"] = device is null ? null : new JsonObject
            {
                ["supportedTypes"] = device.SupportedTypes.ToString(),
                ["blocks"] = new JsonArray([.. device.Blocks.Select(b => (JsonNode)new JsonObject
                {
                    ["queue"] = QueueName(b.QueueIndex),
                    ["queueIndex"] = b.QueueIndex,
                    ["type"] = b.Type.ToString(),
                    ["counters"] = new JsonObject(b.Counters.Select(c => KeyValuePair.Create(c.Name, (JsonNode?)JsonValue.Create(c.Value)))),
                })]),
            },
        };
        if (deviceError is not null)
        {
            report["deviceStatisticsError"] = deviceError;
        }

        return report;
    }

    /// <summary>
    /// <c>vnet offloads</c>: the feature words offered and negotiated (all 128 bits, as <c>low</c>/<c>high</c> words) and
    /// the guest offloads in force; with <paramref name="guestOffloads"/>, first sets those
    /// (VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, the only offloads that change after negotiation).
    /// </summary>
    public JsonObject Offloads(ulong? guestOffloads)
    {
        if (guestOffloads is { } offloads && offloads != _device.Control.GuestOffloads)
        {
            _device.Control.SetGuestOffloads(offloads);
        }

        return new JsonObject
        {
            ["offeredLow"] = _device.OfferedFeatures.Low,
            ["offeredHigh"] = _device.OfferedFeatures.High,
            ["negotiatedLow"] = _device.NegotiatedFeatures.Low,
            ["negotiatedHigh"] = _device.NegotiatedFeatures.High,
            ["guestOffloads"] = _device.Control.GuestOffloads,
        };
    }

    /// <summary><c>vnet channels</c>: the pairs the device offers, those set up and those active; with <paramref name="combined"/>, first activates that many (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET).</summary>
    public JsonObject Channels(int? combined)
    {
        if (combined is { } pairs)
        {
            if (pairs < 1 || pairs > _device.Pairs.Count)
            {
                throw new ArgumentException($"combined must be 1 to {_device.Pairs.Count} (the queue pairs set up); got {pairs}.");
            }

            _device.Control.SetActiveQueuePairs(pairs);
        }

        return new JsonObject
        {
            ["maxCombined"] = _device.Config.MaxVirtqueuePairs,
            ["setUp"] = _device.Pairs.Count,
            ["combined"] = _device.Control.ActiveQueuePairs,
        };
    }

    /// <summary>
    /// <c>vnet rss</c>: the device's limits and the RSS configuration in force (hash types as their bits); with
    /// <paramref name="equal"/>, first spreads a table of <paramref name="tableLength"/> entries round-robin over that many
    /// receive queues, or with <paramref name="weights"/> over the first queues in those proportions (ethtool -X equal N,
    /// weight W0 W1 ...), with <paramref name="hashTypes"/> and <paramref name="key"/> (VIRTIO_NET_CTRL_MQ_RSS_CONFIG; the
    /// device's limits are checked, an ArgumentException says which).
    /// </summary>
    public JsonObject Rss(int? equal, IReadOnlyList<int>? weights, int tableLength, RssHashTypes hashTypes, byte[] key)
    {
        if (equal is { } queues)
        {
            if (queues < 1 || queues > _device.Pairs.Count)
            {
                throw new ArgumentException($"equal must be 1 to {_device.Pairs.Count} (the queue pairs set up); got {queues}.");
            }

            _device.Control.ConfigureRss(RssConfiguration.Spread(queues, tableLength, hashTypes, key));
        }
        else if (weights is not null)
        {
            if (weights.Count < 1 || weights.Count > _device.Pairs.Count || weights.Any(w => w < 0) || weights.Sum() == 0)
            {
                throw new ArgumentException($"weights: 1 to {_device.Pairs.Count} (the queue pairs set up) whole numbers of at least 0, not all 0; got [{string.Join(", ", weights)}].");
            }

            _device.Control.ConfigureRss(new RssConfiguration { IndirectionTable = WeightedTable(weights, tableLength), HashTypes = hashTypes, Key = key });
        }

        RssConfiguration? rss = _device.Control.Rss;
        return new JsonObject
        {
            ["rxQueues"] = _device.Control.ActiveQueuePairs,
            ["enabled"] = rss is not null,
            ["maxKeySize"] = _device.Config.RssMaxKeySize,
            ["maxIndirectionTableLength"] = _device.Config.RssMaxIndirectionTableLength,
            ["supportedHashTypeBits"] = _device.Config.SupportedHashTypes,
            ["hashTypeBits"] = (uint)(rss?.HashTypes ?? RssHashTypes.None),
            ["indirectionTable"] = new JsonArray([.. (rss?.IndirectionTable.ToArray() ?? []).Select(q => (JsonNode)(int)q)]),
            ["key"] = rss is null ? null : FormatBytes(rss.Key.Span),
            ["hashFunction"] = "toeplitz",
        };
    }

    /// <summary>
    /// <c>vnet filter</c>: the MAC address, the receive modes by name and the MAC table; first applies
    /// <paramref name="modes"/> (VIRTIO_NET_CTRL_RX) and, when either list is given, the MAC table
    /// (VIRTIO_NET_CTRL_MAC_TABLE_SET).
    /// </summary>
    public JsonObject Filter(IReadOnlyList<(ReceiveFilterFlags Flag, bool On)> modes, IReadOnlyList<PhysicalAddress>? unicast, IReadOnlyList<PhysicalAddress>? multicast)
    {
        if (modes.Count > 0)
        {
            _device.Control.SetReceiveMode(modes.Aggregate(_device.Control.ReceiveFilter, (f, c) => c.On ? f | c.Flag : f & ~c.Flag));
        }

        if (unicast is { Count: > 0 } || multicast is { Count: > 0 })
        {
            _device.Control.SetMacFilter(unicast ?? [], multicast ?? []);
        }

        ReceiveFilterFlags filter = _device.Control.ReceiveFilter;
        MacFilterPlan? plan = _device.Control.MacFilter;
        var states = new JsonObject();
        foreach ((string name, ReceiveFilterFlags flag) in ReceiveModes)
        {
            states[name] = (filter & flag) != 0;
        }

        return new JsonObject
        {
            ["mac"] = FormatBytes(_device.MacAddress.Span),
            ["modes"] = states,
            ["unicast"] = new JsonArray([.. (plan?.Unicast ?? []).Select(a => (JsonNode)FormatBytes(a.GetAddressBytes()))]),
            ["multicast"] = new JsonArray([.. (plan?.Multicast ?? []).Select(a => (JsonNode)FormatBytes(a.GetAddressBytes()))]),
        };
    }

    /// <summary><c>vnet vlan</c>: the VLAN filter table, after adding <paramref name="add"/> and removing <paramref name="remove"/> (VIRTIO_NET_CTRL_VLAN).</summary>
    public JsonObject Vlan(IReadOnlyList<int> add, IReadOnlyList<int> remove)
    {
        foreach (int id in add)
        {
            _device.Control.AddVlan(id);
        }

        foreach (int id in remove)
        {
            _device.Control.RemoveVlan(id);
        }

        return new JsonObject { ["vlans"] = new JsonArray([.. _device.Control.VlanIds.Select(v => (JsonNode)v)]) };
    }

    /// <summary><c>vnet mtu</c>: <paramref name="mtu"/> (the MTU in use), the device's (VIRTIO_NET_F_MTU) and the frame sizes the driver handles.</summary>
    public JsonObject MtuReport(int mtu) => new()
    {
        ["mtu"] = mtu,
        ["deviceMtu"] = _device.Config.Mtu,
        ["maxReceiveFrame"] = _device.Pairs[0].MaxReceiveFrameLength,
        ["maxTransmitFrame"] = _device.Pairs[0].MaxTransmitFrameLength,
        ["receiveMode"] = _device.ReceiveMode.ToString().ToLowerInvariant(),
    };

    /// <summary>
    /// <c>vnet dump</c>: the device's registers (a read of each; the transport selects each queue to read its
    /// registers), every queue's state (a snapshot of the driver's shadows and the device's indexes, taken without
    /// stopping traffic) and pair 0's counters; the feature words as <c>low</c>/<c>high</c> numbers.
    /// </summary>
    public JsonObject Dump()
    {
        IReadOnlyList<RegisterValue> registers = _device.ReadRegisters();
        IReadOnlyList<VirtqueueState> queues = _device.GetQueueStates();
        return new JsonObject
        {
            ["transport"] = _device.TransportDescription,
            ["mac"] = FormatBytes(_device.MacAddress.Span),
            ["linkUp"] = _device.IsLinkUp,
            ["mtu"] = _device.Mtu,
            ["receiveMode"] = _device.ReceiveMode.ToString().ToLowerInvariant(),
            ["headerLength"] = _device.HeaderLength,
            ["mode"] = _device.OperationMode.ToString().ToLowerInvariant(),
            ["ringLayout"] = _device.RingLayout.ToString().ToLowerInvariant(),
            ["interrupt"] = _device.InterruptDescription,
            ["offeredLow"] = _device.OfferedFeatures.Low,
            ["offeredHigh"] = _device.OfferedFeatures.High,
            ["negotiatedLow"] = _device.NegotiatedFeatures.Low,
            ["negotiatedHigh"] = _device.NegotiatedFeatures.High,
            ["registers"] = new JsonArray([.. registers.Select(r => (JsonNode)new JsonObject
            {
                ["name"] = r.Name,
                ["offset"] = $"0x{r.Offset:x3}",
                ["scope"] = r.Scope,
                ["value"] = $"0x{r.Value:x}",
            })]),
            ["queues"] = new JsonArray([.. queues.Select(q => (JsonNode)new JsonObject
            {
                ["index"] = q.QueueIndex,
                ["layout"] = q.Layout,
                ["size"] = q.Size,
                ["availIdx"] = q.AvailableIndex,
                ["usedIdx"] = q.DeviceUsedIndex,
                ["lastUsedIdx"] = q.LastUsedIndex,
                ["freeDescriptors"] = q.FreeDescriptors,
                ["outstanding"] = q.Outstanding,
                ["interruptsSuppressed"] = q.InterruptsSuppressed,
                ["notificationsSuppressed"] = q.NotificationsSuppressed,
                ["usedEvent"] = q.UsedEvent,
                ["availEvent"] = q.AvailEvent,
                ["availWrapCounter"] = q.AvailWrapCounter,
                ["usedWrapCounter"] = q.UsedWrapCounter,
                ["driverEventFlags"] = q.DriverEventFlags,
                ["deviceEventFlags"] = q.DeviceEventFlags,
                ["descriptorArea"] = q.DescriptorArea,
                ["driverArea"] = q.DriverArea,
                ["deviceArea"] = q.DeviceArea,
                ["brokenReason"] = q.BrokenReason,
            })]),
            ["statistics"] = new JsonArray([.. new[] { _device.Pairs[0].ReceiveStatistics, _device.Pairs[0].TransmitStatistics }.Select(s => (JsonNode)new JsonObject
            {
                ["queue"] = s.Name,
                ["packets"] = s.Packets,
                ["bytes"] = s.Bytes,
                ["drops"] = s.Drops,
                ["errors"] = s.Errors,
                ["notifications"] = s.Notifications,
                ["interrupts"] = s.Interrupts,
            })]),
            ["recoveries"] = _device.Recoveries,
            ["recoveryDroppedTransmits"] = _device.RecoveryDroppedTransmits,
        };
    }

    /// <summary>
    /// Notification coalescing of every receive and transmit queue (VIRTIO_NET_CTRL_NOTF_COAL_RX_SET/TX_SET), each when
    /// given: at most <c>Frames</c> frames or <c>Microseconds</c> before the device notifies. Throws
    /// <see cref="ServiceException"/> when the device cannot (no VIRTIO_NET_F_NOTF_COAL) or says no.
    /// </summary>
    public void SetCoalescing((uint Frames, uint Microseconds)? receive, (uint Frames, uint Microseconds)? transmit)
    {
        try
        {
            if (receive is { } rx)
            {
                _device.Control.SetReceiveCoalescing(new NotificationCoalescing(rx.Frames, rx.Microseconds));
            }

            if (transmit is { } tx)
            {
                _device.Control.SetTransmitCoalescing(new NotificationCoalescing(tx.Frames, tx.Microseconds));
            }
        }
        catch (Exception e) when (e is VirtioException or NotSupportedException or InvalidOperationException or ArgumentException)
        {
            throw new ServiceException($"notification coalescing: {e.Message}", e);
        }
    }

    // ethtool's weighted fill: queue q gets the entries from tableLength * (w0 + ... + w(q-1)) / sum up to the next
    // boundary, so each queue's share of the table (and of the hash space) follows its weight; weight 0 gets none.
    private static ushort[] WeightedTable(IReadOnlyList<int> weights, int tableLength)
    {
        ushort[] table = new ushort[tableLength];
        long sum = weights.Sum(w => (long)w);
        long before = 0;
        for (int queue = 0; queue < weights.Count; queue++)
        {
            int start = (int)(tableLength * before / sum);
            before += weights[queue];
            int end = (int)(tableLength * before / sum);
            table.AsSpan(start, end - start).Fill((ushort)queue);
        }

        return table;
    }

    // 0:rx0 1:tx0 ... 2N:controlq (Ref: virtio v1.2 §5.1.2), in the names the driver's own counters use.
    private string QueueName(int queueIndex) =>
        queueIndex == _device.Control.QueueIndex ? "cvq"
        : queueIndex % 2 == 0 ? $"rx_queue_{queueIndex / 2}"
        : $"tx_queue_{queueIndex / 2}";

    // MAC addresses and keys as ethtool and ip print them: lower-case hex bytes joined by colons.
    private static string FormatBytes(ReadOnlySpan<byte> bytes) =>
        string.Join(':', bytes.ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
}
