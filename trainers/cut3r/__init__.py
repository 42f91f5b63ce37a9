"""CUT3R in Flax NNX (spec `human3r_spec.md` §2-3): the scene backbone of Human3R.

Stable public API (Human3R builds on these names; shapes in each docstring):

  Configuration
    Cut3rConfig.from_config(get_config("tiny" | "released").model)   experiments/configs/cut3r.py

  Building and loading (trainers.cut3r.convert)
    load_cut3r(state_dict_or_path, cfg) -> (Cut3r, ConversionReport)   abstract build + fill
    abstract_cut3r(cfg); convert_state_dict(model, sd); fill_model(model, arrays)
    load_checkpoint_file(path)   .pth (torch optional) / .npz / .safetensors (the shared
                                 trainers.state_dict_file reader, CUT3R layout)
    save_params(path, model); load_params(path, cfg)   converted parameters, atomic .npz
    CheckpointMismatchError (an InputError)
    random_params(cfg, seed) -> Cut3r   random weights without host init (benchmarks)

  One frame, stage by stage (methods of Cut3r)
    feat, pos = model.encode(img)                    img [B,H,W,3] in [-1,1] -> [B,N,E], [B,N,2]
    state, mem = model.initial_state(B)              [B,S,D], [B,M,2D]
    query = model.pose_query(feat, mem, use_token)   [B,1,D]
    dec = model.decode(state, feat, pos, query, extra=None, extra_pos=None, extra_valid=None)
        -> DecoderOutput(new_state [B,S,D], state_layers [L,B,S,D],
                         img_layers [L,B,1+N+n,D] = [pose ; N image ; n extra tokens],
                         gate_logit [B,S])       `extra` = tokens injected into the image stream
                                                 (Human3R prompts), masked by `extra_valid`
    frame = model.heads(feat, pos, dec, (H, W)) -> Cut3rFrame   (extra tokens are ignored)
    mem2 = model.update_memory(mem, feat, dec.img_layers[-1][:, :1])

  The online loop (trainers.cut3r.recurrent)
    Cut3rCarry(state, mem, fresh); init_carry(model, B)
    update_carry(model, carry, dec, new_mem, reset, loop="cut3r"|"human3r", ttt3r=bool)
    step(model, carry, img, reset, loop=..., ttt3r=...) -> (carry, Cut3rFrame)
    run_sequence(model, frames [T,B,H,W,3], resets [T], ...) -> (carry, frames stacked on T)

  Long videos and cameras (trainers.cut3r.geometry)
    pose_to_T_world_cam(camera_pose [...,7]) -> [...,4,4]
    reset_views(num_frames, reset_interval) -> (frame index per view, reset flag per view)
    chain_chunks(T_chunk_cam [V,4,4], resets [V]) -> (kept view indices, T_world_cam [K,4,4])
    chain_step(T_world_chunk [4,4], T_chunk_cam [4,4], reset []) -> (T_world_cam, next anchor)
    focal_from_pointmap(pts3d [...,H,W,3]) -> f [...]   Weiszfeld (§3.13)

  Layers (trainers.cut3r.layers): Block, DecoderBlock, ConditionModulationBlock,
    SelfAttention, CrossAttention, stack_modules, scan_stack, rope_f16.
"""
