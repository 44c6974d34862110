//! IP address allocations: which address of which pool belongs to whom
//! (usually a machine id). The lowest free address of a pool is handed out.

use super::{Store, StoreError};
use rusqlite::{OptionalExtension, params};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A range of addresses to allocate from: `first` to `last` inclusive, both
/// of the same family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPool {
    pub name: String,
    pub first: IpAddr,
    pub last: IpAddr,
}

/// An allocated address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAllocation {
    pub ip: IpAddr,
    pub pool: String,
    pub owner: String,
    pub allocated_at: i64,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v4: bool, n: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

/// Pools larger than this are searched only in their first addresses.
const MAX_SCAN: u128 = 1 << 20;

impl Store {
    /// Allocates the lowest free address of `pool` to `owner`.
    pub async fn allocate_ip(&self, pool: IpPool, owner: &str) -> Result<IpAllocation, StoreError> {
        let owner = owner.to_owned();
        let now = self.now_ms();
        self.call(move |c| {
            let tx = c.transaction()?;
            let v4 = pool.first.is_ipv4();
            if v4 != pool.last.is_ipv4() {
                return Err(StoreError::PoolExhausted(format!("{} (first and last differ in family)", pool.name)));
            }
            let (lo, hi) = (to_u128(pool.first), to_u128(pool.last));
            let taken: std::collections::HashSet<String> = {
                let mut st = tx.prepare("SELECT ip FROM ip_allocations WHERE pool = ?1")?;
                let rows = st.query_map([&pool.name], |r| r.get::<_, String>(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let mut n = lo;
            let found = loop {
                if n > hi || n - lo >= MAX_SCAN {
                    break None;
                }
                let ip = from_u128(v4, n);
                if !taken.contains(&ip.to_string()) {
                    break Some(ip);
                }
                n += 1;
            };
            let ip = found.ok_or_else(|| StoreError::PoolExhausted(pool.name.clone()))?;
            tx.execute(
                "INSERT INTO ip_allocations (ip, pool, owner, allocated_at) VALUES (?1, ?2, ?3, ?4)",
                params![ip.to_string(), pool.name, owner, now],
            )?;
            tx.commit()?;
            Ok(IpAllocation { ip, pool: pool.name, owner, allocated_at: now })
        })
        .await
    }

    /// Records a specific address as belonging to `owner`.
    pub async fn reserve_ip(
        &self,
        pool: &str,
        ip: IpAddr,
        owner: &str,
    ) -> Result<IpAllocation, StoreError> {
        let (pool, owner) = (pool.to_owned(), owner.to_owned());
        let now = self.now_ms();
        self.call(move |c| {
            let exists = c
                .query_row("SELECT 1 FROM ip_allocations WHERE ip = ?1", [ip.to_string()], |_| Ok(()))
                .optional()?
                .is_some();
            if exists {
                return Err(StoreError::AddressTaken(ip.to_string()));
            }
            c.execute(
                "INSERT INTO ip_allocations (ip, pool, owner, allocated_at) VALUES (?1, ?2, ?3, ?4)",
                params![ip.to_string(), pool, owner, now],
            )?;
            Ok(IpAllocation { ip, pool, owner, allocated_at: now })
        })
        .await
    }

    /// Every address allocated to `owner`.
    pub async fn ips_of(&self, owner: &str) -> Result<Vec<IpAllocation>, StoreError> {
        let owner = owner.to_owned();
        self.call(move |c| {
            let mut st = c.prepare("SELECT ip, pool, owner, allocated_at FROM ip_allocations WHERE owner = ?1 ORDER BY ip")?;
            let rows = st.query_map([&owner], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (ip, pool, owner, allocated_at) = row?;
                let ip = ip.parse().map_err(|_| StoreError::Corrupt(format!("ip_allocations.ip: {ip:?} is not an address")))?;
                out.push(IpAllocation { ip, pool, owner, allocated_at });
            }
            Ok(out)
        })
        .await
    }

    /// Frees every address of `owner`; returns how many.
    pub async fn release_ips(&self, owner: &str) -> Result<usize, StoreError> {
        let owner = owner.to_owned();
        self.call(move |c| Ok(c.execute("DELETE FROM ip_allocations WHERE owner = ?1", [&owner])?))
            .await
    }
}
