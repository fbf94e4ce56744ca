-- A group's members in their order, read by GetGroup, ListGroups and
-- GetGroupTargets: without this index each of them scans every membership
-- of every cycle and sorts the group's.
CREATE INDEX group_members_group ON group_members (cycle_id, group_id, position);
