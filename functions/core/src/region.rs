//! Regions and the roles they play.
//!
//! A deployment spans exactly two regions ([`RegionPair`]). Which one is active is *not*
//! configuration: it changes during a failover and is decided by the writer claim
//! ([`crate::WriterClaim`]) read at run time. The pair only fixes who the peers are.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{ErrorName, SwitchyardError};

/// AWS commercial and GovCloud region codes switchyard accepts. A typo in a region is a
/// deployment bug that must fail loudly, not a request sent to a region that does not exist.
const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// A validated AWS region code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Region {
    type Err = SwitchyardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if KNOWN_REGIONS.contains(&s) {
            Ok(Region(s.to_owned()))
        } else {
            Err(SwitchyardError::new(ErrorName::UnknownRegion, format!("{s:?} is not a known AWS region")))
        }
    }
}

impl TryFrom<String> for Region {
    type Error = SwitchyardError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Region> for String {
    fn from(r: Region) -> String {
        r.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The two regions of a deployment. `primary` is the region that is active when the
/// deployment is first created (epoch 1); after a failover the roles swap but the pair does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionPair {
    pub primary: Region,
    pub standby: Region,
}

impl RegionPair {
    pub fn new(primary: Region, standby: Region) -> Result<Self, SwitchyardError> {
        if primary == standby {
            return Err(SwitchyardError::new(
                ErrorName::MissingConfig,
                format!("primary and standby must differ, both are {primary}"),
            ));
        }
        Ok(RegionPair { primary, standby })
    }

    pub fn contains(&self, region: &Region) -> bool {
        *region == self.primary || *region == self.standby
    }

    /// Fails with `UnknownRegion` unless `region` is one of the pair.
    pub fn check(&self, region: &Region) -> Result<(), SwitchyardError> {
        if self.contains(region) {
            Ok(())
        } else {
            Err(SwitchyardError::new(
                ErrorName::UnknownRegion,
                format!("{region} is not part of this deployment ({}, {})", self.primary, self.standby),
            ))
        }
    }

    /// The other region of the pair.
    pub fn peer_of(&self, region: &Region) -> Result<&Region, SwitchyardError> {
        self.check(region)?;
        Ok(if *region == self.primary { &self.standby } else { &self.primary })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        [&self.primary, &self.standby].into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Region {
        s.parse().expect("valid region")
    }

    #[test]
    fn parses_known_regions_only() {
        let table = [
            ("us-east-1", true),
            ("us-east-2", true),
            ("eu-west-1", true),
            ("us-east-3", false),
            ("US-EAST-1", false),
            ("", false),
            (" us-east-1", false),
        ];
        for (input, ok) in table {
            let parsed = input.parse::<Region>();
            assert_eq!(parsed.is_ok(), ok, "{input:?}");
            if let Err(e) = parsed {
                assert_eq!(e.name, ErrorName::UnknownRegion);
            }
        }
    }

    #[test]
    fn region_deserializes_with_validation() {
        assert_eq!(serde_json::from_str::<Region>("\"us-east-2\"").ok(), Some(r("us-east-2")));
        assert!(serde_json::from_str::<Region>("\"mars-north-1\"").is_err());
    }

    #[test]
    fn pair_peers() {
        let pair = RegionPair::new(r("us-east-1"), r("us-east-2")).expect("distinct");
        assert_eq!(pair.peer_of(&r("us-east-1")).ok(), Some(&r("us-east-2")));
        assert_eq!(pair.peer_of(&r("us-east-2")).ok(), Some(&r("us-east-1")));
        let outsider = pair.peer_of(&r("eu-west-1")).expect_err("not in pair");
        assert_eq!(outsider.name, ErrorName::UnknownRegion);
    }

    #[test]
    fn pair_needs_two_regions() {
        assert!(RegionPair::new(r("us-east-1"), r("us-east-1")).is_err());
    }
}
