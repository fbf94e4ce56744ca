use super::*;

fn peer(period: &str) -> Peer {
    Peer {
        unit_id: "u".into(),
        indicator: "X".into(),
        period: period.into(),
        version: 1,
        value: "1".into(),
        group_id: "g".into(),
        provider_id: "p".into(),
    }
}

#[test]
fn the_latest_earlier_period_prefers_the_quarter_on_a_tie() {
    let own = [
        peer("2026-03"),
        peer("2026-Q1"),
        peer("2026-05"),
        peer("2026"),
    ];
    let (p, share) = latest_earlier(&own, "2026-Q2").unwrap();
    assert_eq!(
        (p.period.as_str(), share),
        ("2026-05", Decimal::new(5, 0) / Decimal::new(12, 0))
    );
    let (p, _) = latest_earlier(&own, "2026-04").unwrap();
    assert_eq!(p.period, "2026-Q1");
    // A final value looks at the latest progress figure of the year.
    let (p, _) = latest_earlier(&own, "2026").unwrap();
    assert_eq!(p.period, "2026-05");
    assert!(latest_earlier(&own, "2026-01").is_none());
}

#[test]
fn a_final_below_progress_holds_whichever_came_first() {
    let with = |value: &str, p: &str| Peer {
        value: value.into(),
        ..peer(p)
    };
    let set = [
        with("1050", "2026"),
        with("900", "2026-Q2"),
        with("1200", "2026-Q3"),
    ];
    let reversed = [
        with("1200", "2026-Q3"),
        with("900", "2026-Q2"),
        with("1050", "2026"),
    ];
    for own in [&set[..], &reversed[..]] {
        let (last, raised) = final_against_progress(own).unwrap().unwrap();
        assert_eq!(last.period, "2026");
        let r = raised.expect("1050 below the year-to-date 1200");
        assert!(r.explanation().contains("1200 of 2026-Q3"), "{r:?}");
    }
    // Q3 corrected to 1000: the final stands.
    let corrected = [with("1050", "2026"), with("1000", "2026-Q3")];
    let (_, raised) = final_against_progress(&corrected).unwrap().unwrap();
    assert_eq!(raised, None);
    // Without a final value there is nothing to check yet.
    assert!(final_against_progress(&set[1..]).unwrap().is_none());
}

#[test]
fn flag_names_split_into_value_kind_and_version() {
    let (k, kind, v) =
        flag_key("cycles/2026/units/siming/indicators/GDP/periods/2026/flags/peer_outlier-v2")
            .unwrap();
    assert_eq!(
        (k.unit, k.period, kind, v),
        ("siming", "2026", Kind::PeerOutlier, 2)
    );
    for bad in [
        "cycles/2026/units/siming/indicators/GDP/periods/2026",
        "cycles/2026/units/siming/indicators/GDP/periods/2026/flags/nope-v1",
        "cycles/2026/units/siming/indicators/GDP/periods/2026/flags/jump-vx",
    ] {
        assert!(flag_key(bad).is_err(), "{bad}");
    }
}
