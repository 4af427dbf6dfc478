"""Fast tests on data the tests make themselves: no shared data, subprocess servers, browser or DDP."""
