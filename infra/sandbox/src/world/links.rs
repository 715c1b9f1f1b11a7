//! The reachability graph between the sandbox's three places (the pair and the claim store's
//! witness region), and what a cut does to the calls that cross it.

use serde::{Deserialize, Serialize};
use switchyard_core::Region;

/// What a cut link does to a call that crosses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CutMode {
    /// The connection is reset at once (the caller sees a refused or reset connection).
    Refuse,
    /// Nothing crosses and nothing answers: the call hangs until the caller's own deadline.
    Blackhole,
    /// The request crosses and is applied; the answer is lost, so the caller's deadline
    /// expires on a call that happened.
    DropResponse,
}

impl CutMode {
    pub const ALL: [CutMode; 3] = [CutMode::Refuse, CutMode::Blackhole, CutMode::DropResponse];

    pub fn as_str(self) -> &'static str {
        match self {
            CutMode::Refuse => "refuse",
            CutMode::Blackhole => "blackhole",
            CutMode::DropResponse => "drop-response",
        }
    }
}

impl std::str::FromStr for CutMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        CutMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a cut mode (refuse, blackhole, drop-response)"))
    }
}

/// One cut link, both directions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    pub between: [Region; 2],
    pub mode: CutMode,
}

/// One service of one region cut for every caller in the regions (a regional brownout of,
/// say, DynamoDB): `service` is the AWS signing name (`dynamodb`, `sqs`, `secretsmanager`,
/// `monitoring`…) or `postgres` (the region's database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCut {
    pub region: Region,
    pub service: String,
    pub mode: CutMode,
}

/// The state of every link: which are cut, and the delay every cross-place call pays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    pub cuts: Vec<Cut>,
    #[serde(default)]
    pub services: Vec<ServiceCut>,
    /// Added to each crossing of an open link between two places (a round trip pays it
    /// once). Real multi-Region strongly consistent reads and writes pay tens of ms.
    pub delay_ms: u64,
    /// Replica regions of the claim tables whose writes are refused with
    /// `ReplicatedWriteConflictException`: "one or more items in the request are being
    /// modified by a request in another Region" (HTTP 400, retry-safe; the DynamoDB API's
    /// exception, <https://docs.aws.amazon.com/botocore/latest/reference/services/dynamodb/client/exceptions/ReplicatedWriteConflictException.html>).
    #[serde(default)]
    pub write_conflicts: Vec<Region>,
}

/// A partition shape on the graph {primary, standby, witness}.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Cut every link of one place.
    Isolate(Region),
    /// Cut the link between two places.
    Link(Region, Region),
    /// Cut every link of the witness region.
    WitnessDown,
    /// Cut one service of a region for every caller (the operator's view excepted).
    Service(Region, String),
}

impl Links {
    /// How the link between `a` and `b` is cut; `None` when it is open (a place always
    /// reaches itself).
    pub fn between(&self, a: &Region, b: &Region) -> Option<CutMode> {
        if a == b {
            return None;
        }
        self.cuts.iter().find(|c| c.between.contains(a) && c.between.contains(b)).map(|c| c.mode)
    }

    /// Cuts the link between `a` and `b` in `mode` (replacing a cut already there).
    pub fn cut(&mut self, a: &Region, b: &Region, mode: CutMode) {
        if a == b {
            return;
        }
        self.cuts.retain(|c| !(c.between.contains(a) && c.between.contains(b)));
        self.cuts.push(Cut { between: [a.clone(), b.clone()], mode });
    }

    /// Adds the cuts of `shape` over `places` (the first is the witness for `WitnessDown`'s
    /// sake: see [`Links::apply`]). Refuses places that are not in the graph.
    pub fn apply(&mut self, shape: &Shape, mode: CutMode, places: &[Region], witness: &Region) -> Result<(), String> {
        let known = |r: &Region| {
            if places.contains(r) {
                Ok(())
            } else {
                let names: Vec<&str> = places.iter().map(Region::as_str).collect();
                Err(format!("{r} is not a sandbox place ({})", names.join(", ")))
            }
        };
        match shape {
            Shape::Isolate(r) => {
                known(r)?;
                for other in places {
                    self.cut(r, other, mode);
                }
            }
            Shape::WitnessDown => {
                for other in places {
                    self.cut(witness, other, mode);
                }
            }
            Shape::Service(r, service) => {
                known(r)?;
                if service.is_empty()
                    || !service.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(format!("{service:?} is not a service name (e.g. dynamodb, sqs, postgres)"));
                }
                self.services.retain(|c| !(c.region == *r && c.service == *service));
                self.services.push(ServiceCut { region: r.clone(), service: service.clone(), mode });
            }
            Shape::Link(a, b) => {
                known(a)?;
                known(b)?;
                if a == b {
                    return Err(format!("--link {a}:{b} names one place twice"));
                }
                self.cut(a, b, mode);
            }
        }
        Ok(())
    }

    /// How `service` of `region` is cut now; `None` when it answers.
    pub fn service(&self, region: &Region, service: &str) -> Option<CutMode> {
        self.services.iter().find(|c| c.region == *region && c.service == service).map(|c| c.mode)
    }

    /// Whether `place` reaches a majority of `places` (itself included): the condition under
    /// which a multi-Region strongly consistent replica serves strong reads and writes.
    pub fn reaches_majority(&self, place: &Region, places: &[Region]) -> bool {
        let reached = places.iter().filter(|p| self.between(place, p).is_none()).count();
        reached * 2 > places.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Region {
        s.parse().expect("test value")
    }

    #[test]
    fn each_shape_cuts_what_it_names_and_majority_follows() {
        let places = [r("us-east-1"), r("us-east-2"), r("us-west-2")];
        let (e1, e2, w) = (&places[0], &places[1], &places[2]);
        let majority = |l: &Links| places.iter().map(|p| l.reaches_majority(p, &places)).collect::<Vec<_>>();

        let open = Links::default();
        assert_eq!(majority(&open), [true, true, true]);

        let mut isolated = Links::default();
        isolated.apply(&Shape::Isolate(e1.clone()), CutMode::Blackhole, &places, w).expect("test value");
        assert_eq!(isolated.between(e1, e2), Some(CutMode::Blackhole));
        assert_eq!(isolated.between(e1, w), Some(CutMode::Blackhole));
        assert_eq!(isolated.between(e2, w), None);
        assert_eq!(majority(&isolated), [false, true, true]);

        // The pair cannot talk, yet each still reaches the witness: both keep a majority,
        // which is why the claim store (not the pair) must decide who writes.
        let mut pair = Links::default();
        pair.apply(&Shape::Link(e1.clone(), e2.clone()), CutMode::Refuse, &places, w).expect("test value");
        assert_eq!(majority(&pair), [true, true, true]);
        assert_eq!(pair.between(e2, e1), Some(CutMode::Refuse));

        let mut witness = Links::default();
        witness.apply(&Shape::WitnessDown, CutMode::DropResponse, &places, w).expect("test value");
        assert_eq!(majority(&witness), [true, true, false]);
        // And with the pair cut too, neither replica has a majority.
        witness.apply(&Shape::Link(e1.clone(), e2.clone()), CutMode::Refuse, &places, w).expect("test value");
        assert_eq!(majority(&witness), [false, false, false]);

        // A service cut takes one service of one region down, for everyone, and no link.
        let mut brownout = Links::default();
        brownout
            .apply(&Shape::Service(e1.clone(), "dynamodb".into()), CutMode::Blackhole, &places, w)
            .expect("service");
        assert_eq!(brownout.service(e1, "dynamodb"), Some(CutMode::Blackhole));
        assert_eq!((brownout.service(e1, "sqs"), brownout.service(e2, "dynamodb")), (None, None));
        assert_eq!(majority(&brownout), [true, true, true]);
        assert!(brownout.apply(&Shape::Service(e1.clone(), "Dynamo DB".into()), CutMode::Refuse, &places, w).is_err());

        let mut bad = Links::default();
        assert!(bad.apply(&Shape::Isolate(r("eu-west-1")), CutMode::Refuse, &places, w).is_err());
        assert!(bad.apply(&Shape::Link(e1.clone(), e1.clone()), CutMode::Refuse, &places, w).is_err());
        assert_eq!(bad, Links::default());
    }
}
