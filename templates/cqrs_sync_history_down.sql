-- sync_history stays: other entities may share it (drop it in a migration of its own
-- once none uses it).  Forget this entity's rows; adjust the value if your sync code
-- names entity types differently.
DELETE FROM sync_history WHERE entity_type = '${entity}';

