namespace VirtioNet.Net.Vlan;

/// <summary>
/// The tag control information (TCI) of an IEEE 802.1Q tag: priority code point (3 bits), drop eligible indicator (1 bit)
/// and VLAN identifier (12 bits). Virtio has no tag offload, so the driver inserts and strips tags itself.
/// </summary>
public readonly record struct VlanTag
{
    /// <summary>The largest VLAN identifier a 12-bit field holds (4095 itself is reserved by 802.1Q but still filterable).</summary>
    public const int MaxId = 4095;

    /// <summary>The largest priority code point (3 bits).</summary>
    public const int MaxPriority = 7;

    /// <summary>Creates a tag.</summary>
    /// <param name="id">The VLAN identifier, 0 to 4095 (0 marks a priority-only tag).</param>
    /// <param name="priority">The priority code point, 0 to 7.</param>
    /// <param name="dropEligible">The drop eligible indicator.</param>
    /// <exception cref="ArgumentOutOfRangeException">The identifier is above 4095 or the priority above 7.</exception>
    public VlanTag(int id, int priority = 0, bool dropEligible = false)
    {
        ValidateId(id);
        if (priority is < 0 or > MaxPriority)
        {
            throw new ArgumentOutOfRangeException(nameof(priority), priority, "An 802.1Q priority code point is 0 to 7.");
        }

        Tci = (ushort)((priority << 13) | (dropEligible ? 1 << 12 : 0) | id);
    }

    private VlanTag(ushort tci) => Tci = tci;

    /// <summary>The 16-bit tag control information as it appears (big-endian) on the wire.</summary>
    public ushort Tci { get; }

    /// <summary>The VLAN identifier (low 12 bits).</summary>
    public int Id => Tci & 0x0FFF;

    /// <summary>The priority code point (top 3 bits), which selects a transmit queue when several are in use.</summary>
    public int Priority => Tci >> 13;

    /// <summary>The drop eligible indicator (bit 12).</summary>
    public bool DropEligible => (Tci & 0x1000) != 0;

    /// <summary>Interprets a TCI read from a frame; every 16-bit value is a valid TCI.</summary>
    public static VlanTag FromTci(ushort tci) => new(tci);

    /// <summary>Throws when <paramref name="id"/> is not a 12-bit VLAN identifier.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The identifier is negative or above 4095.</exception>
    public static void ValidateId(int id)
    {
        if (id is < 0 or > MaxId)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"A VLAN id is 12 bits: 0 to {MaxId}; {id} does not fit.");
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"vlan {Id} prio {Priority}{(DropEligible ? " dei" : string.Empty)}";
}
