using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;

namespace VirtioNet.Diagnostics;

/// <summary>
/// A small IPv4-to-MAC cache with a lifetime per entry and a bounded size. A diagnostic client talks to a handful
/// of hosts (the router, the DNS server, a target), so a linear eviction scan is cheaper than a policy structure.
/// </summary>
public sealed class ArpCache
{
    private readonly Dictionary<IPAddress, Entry> _entries = [];

    /// <summary>Creates a cache.</summary>
    /// <param name="lifetime">How long an entry stays valid. Default 60 s, like Linux's base reachable time
    /// (30 s randomised up to 45 s) rounded up: the peers of a diagnostic session do not move.</param>
    /// <param name="capacity">How many entries are kept before the oldest is evicted. Default 64.</param>
    public ArpCache(TimeSpan? lifetime = null, int capacity = 64)
    {
        var chosenLifetime = lifetime ?? TimeSpan.FromSeconds(60);
        ArgumentOutOfRangeException.ThrowIfLessThan(chosenLifetime, TimeSpan.Zero, nameof(lifetime));
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Lifetime = chosenLifetime;
        Capacity = capacity;
    }

    /// <summary>How long an entry stays valid after it was learned.</summary>
    public TimeSpan Lifetime { get; }

    /// <summary>The most entries kept at once.</summary>
    public int Capacity { get; }

    /// <summary>Entries held, expired or not.</summary>
    public int Count => _entries.Count;

    /// <summary>Looks up an address; expired entries are removed and not returned.</summary>
    public bool TryGet(IPAddress address, out PhysicalAddress macAddress)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (_entries.TryGetValue(address, out var entry))
        {
            if (Stopwatch.GetElapsedTime(entry.LearnedAt) < Lifetime)
            {
                macAddress = entry.MacAddress;
                return true;
            }

            _entries.Remove(address);
        }

        macAddress = PhysicalAddress.None;
        return false;
    }

    /// <summary>Whether <paramref name="address"/> has an entry (expired or not); RFC 826 updates only those it already has.</summary>
    public bool Contains(IPAddress address) => _entries.ContainsKey(address);

    /// <summary>Adds or refreshes an entry, evicting the oldest one when full.</summary>
    public void Set(IPAddress address, PhysicalAddress macAddress)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(macAddress);
        if (!_entries.ContainsKey(address) && _entries.Count >= Capacity)
            EvictOldest();
        _entries[address] = new Entry(macAddress, Stopwatch.GetTimestamp());
    }

    /// <summary>Removes an entry; returns whether there was one.</summary>
    public bool Remove(IPAddress address) => _entries.Remove(address);

    /// <summary>Removes every entry.</summary>
    public void Clear() => _entries.Clear();

    private void EvictOldest()
    {
        IPAddress? oldest = null;
        var oldestTime = long.MaxValue;
        foreach (var (address, entry) in _entries)
        {
            if (entry.LearnedAt < oldestTime)
            {
                oldest = address;
                oldestTime = entry.LearnedAt;
            }
        }

        if (oldest is not null)
            _entries.Remove(oldest);
    }

    private readonly record struct Entry(PhysicalAddress MacAddress, long LearnedAt);
}
